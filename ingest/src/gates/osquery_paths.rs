//! osquery's FIM wildcard rules, translated into sluice's path rules.
//!
//! osquery writes `%` for "anything within one level" and `%%` for
//! "anything below, recursively", and also accepts `*` and `**`. A pattern
//! that ends in `/%%` (or `/**`) and has no other wildcard is a plain prefix,
//! which is the cheapest rule there is; everything else becomes a glob.

/// A path rule in sluice's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslatedRule {
    /// An exact path.
    Literal(String),
    /// A path prefix.
    Prefix(String),
    /// A glob (`*` within a component, `**` across).
    Glob(String),
}

/// Translates one osquery pattern.
///
/// - `/etc/hosts` → literal
/// - `/Users/%%` and `/Users/**` → prefix `/Users/`
/// - `/Users/%/Library` → glob `/Users/*/Library`
/// - `/Users/%/Library/%%` → glob `/Users/*/Library/**`
/// - `/var/log/%.log` → glob `/var/log/*.log`
pub fn translate(pattern: &str) -> TranslatedRule {
    let normalised = pattern.replace("%%", "**").replace('%', "*");
    let has_wildcard = |s: &str| s.contains(['*', '?', '[']);
    if let Some(base) = normalised.strip_suffix("**")
        && base.ends_with('/')
        && !has_wildcard(base)
    {
        return TranslatedRule::Prefix(base.to_string());
    }
    if has_wildcard(&normalised) {
        // `**` must stand as a whole component for globset to recurse.
        TranslatedRule::Glob(normalised)
    } else {
        TranslatedRule::Literal(normalised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osquery_wildcards() {
        assert_eq!(
            translate("/etc/hosts"),
            TranslatedRule::Literal("/etc/hosts".into())
        );
        assert_eq!(
            translate("/Users/%%"),
            TranslatedRule::Prefix("/Users/".into())
        );
        assert_eq!(
            translate("/Users/**"),
            TranslatedRule::Prefix("/Users/".into())
        );
        assert_eq!(
            translate("/Users/%/Library"),
            TranslatedRule::Glob("/Users/*/Library".into())
        );
        assert_eq!(
            translate("/Users/%/Library/%%"),
            TranslatedRule::Glob("/Users/*/Library/**".into())
        );
        assert_eq!(
            translate("/var/log/%.log"),
            TranslatedRule::Glob("/var/log/*.log".into())
        );
    }
}
