#!/usr/bin/env python3
"""Writes sample.jsonl: eslogger lines covering every event type sluice maps.

The lines follow ../../../shared/ES_JSON.md: compact JSON, `/` escaped as `\\/`,
keys in no stable order, both audit_token shapes, nulls, a 64-bit st_ino,
message versions 1, 9, 10 and 11. A few lines are bad on purpose (truncated,
not JSON, an unmapped event type, a missing field), and one path is not valid
UTF-8. Run it again after editing; the integration tests read the output.
"""
import json
import random

rng = random.Random(7)
BIG_INO = 1152921500312525701
T0 = "2024-05-01T12:00:00"


def stat():
    return {"st_dev": 16777232, "st_ino": BIG_INO, "st_mode": 33188, "st_nlink": 1,
            "st_uid": 501, "st_gid": 20, "st_rdev": 0, "st_size": 1234, "st_blocks": 8,
            "st_blksize": 4096, "st_flags": 0, "st_gen": 0,
            "st_atimespec": "2024-04-30T08:00:00.000000000Z", "st_mtimespec": "2024-04-30T08:00:00.000000000Z",
            "st_ctimespec": "2024-04-30T08:00:00.000000000Z", "st_birthtimespec": "2024-04-30T08:00:00.000000000Z"}


def file(path):
    return {"path": path, "path_truncated": False, "stat": stat()}


def token(version, auid, euid, egid, ruid, rgid, pid, asid, pidversion):
    if version == 10:
        return [auid, euid, egid, ruid, rgid, pid, asid, pidversion]
    return {"auid": auid, "euid": euid, "egid": egid, "ruid": ruid, "rgid": rgid, "pid": pid,
            "asid": asid, "pidversion": pidversion}


def process(version, pid, ppid, exe, uid=501, euid=None, gid=20, signing_id="com.apple.zsh", team_id=None,
            flags=0x26000001, platform=True, cdhash="0CF06B1B4D8B6E1D2F4B7F0E9D4A3C2B1A0F9E8D"):
    euid = uid if euid is None else euid
    p = {
        "audit_token": token(version, 501, euid, gid, uid, gid, pid, 100004, pid + 1000),
        "parent_audit_token": token(version, 501, uid, gid, uid, gid, ppid, 100004, ppid + 1000),
        "responsible_audit_token": token(version, 501, uid, gid, uid, gid, ppid, 100004, ppid + 1000),
        "ppid": ppid, "original_ppid": ppid, "group_id": pid, "session_id": 400,
        "codesigning_flags": flags, "is_platform_binary": platform, "is_es_client": False,
        "cdhash": cdhash, "signing_id": signing_id, "team_id": team_id,
        "executable": file(exe), "tty": None, "start_time": "2024-05-01T11:00:00.000000Z",
    }
    if version >= 10:
        p["cs_validation_category"] = 1
    items = list(p.items())
    rng.shuffle(items)
    return dict(items)


seq = {}
gseq = [0]


def message(version, event_type, name, body, proc, time, shuffle=True, extra=None):
    seq[name] = seq.get(name, 0) + 1
    gseq[0] += 1
    m = {"schema_version": 1, "version": version, "time": time, "mach_time": 123456789,
         "event_type": event_type, "action_type": 1,
         "action": {"result": {"result": {"auth": 0}, "result_type": 0}},
         "seq_num": seq[name], "global_seq_num": gseq[0], "thread": {"thread_id": 4242},
         "process": proc, "event": {name: body}}
    if version == 1:
        del m["seq_num"], m["global_seq_num"]
    if extra:
        m.update(extra)
    items = list(m.items())
    if shuffle:
        rng.shuffle(items)
    return dict(items)


def dump(m):
    text = json.dumps(m, separators=(",", ":"), ensure_ascii=False)
    return text.replace("/", "\\/").encode("utf-8")


zsh = lambda v: process(v, 500, 1, "/bin/zsh")
curl = lambda v: process(v, 600, 500, "/usr/bin/curl", signing_id="com.apple.curl")
finder = lambda v: process(v, 700, 1, "/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",
                           signing_id="com.apple.finder")
chrome = lambda v: process(v, 800, 1, "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
                           signing_id="com.google.Chrome", team_id="EQHXZ8M8AV", flags=0x10301, platform=False)

lines = []
# exec, version 9, object tokens; the target is described, not the caller.
lines.append(dump(message(9, 9, "exec", {
    "target": process(9, 500, 1, "/bin/ls", signing_id="com.apple.ls"),
    "args": ["ls", "-la", "My Documents"],
    "env": ["PATH=/usr/bin:/bin", "HOME=/Users/alice"],
    "cwd": file("/Users/alice"), "script": None, "dyld_exec_path": "/bin/ls",
    "fds": [{"fd": 0, "fdtype": 1}], "last_fd": 2, "image_cputype": 16777228, "image_cpusubtype": -2147483646,
}, zsh(9), T0 + ".123456789Z")))
# fork, version 10: audit tokens as arrays.
lines.append(dump(message(10, 11, "fork", {"child": process(10, 501, 500, "/bin/zsh")}, zsh(10), T0 + ".200000000Z")))
# exit, version 11 (with entitlements-era fields).
lines.append(dump(message(11, 15, "exit", {"stat": 256}, process(11, 501, 500, "/bin/zsh"), T0 + ".300000000Z")))
lines.append(dump(message(9, 10, "open", {"fflag": 1, "file": file("/etc/hosts")}, curl(9), "2024-05-01T12:00:01.000000000Z")))
lines.append(dump(message(9, 12, "close", {"modified": True, "was_mapped_writable": False,
                                           "target": file("/private/var/log/system.log")}, curl(9), "2024-05-01T12:00:02.000000000Z")))
lines.append(dump(message(9, 13, "create", {"destination_type": 1, "destination": {"new_path": {
    "dir": file("/Users/alice/Downloads"), "filename": "report.pdf", "mode": 420}}}, chrome(9), "2024-05-01T12:00:03.000000000Z")))
lines.append(dump(message(9, 13, "create", {"destination_type": 0, "destination": {
    "existing_file": file("/tmp/existing.txt")}}, finder(9), "2024-05-01T12:00:04.000000000Z")))
lines.append(dump(message(10, 25, "rename", {"source": file("/Users/alice/a.txt"), "destination_type": 1,
                                            "destination": {"new_path": {"dir": file("/Users/alice/Documents"), "filename": "b.txt"}}},
                          finder(10), "2024-05-01T12:00:05.000000000Z")))
lines.append(dump(message(9, 25, "rename", {"source": file("/tmp/x"), "destination_type": 0,
                                           "destination": {"existing_file": file("/tmp/y")}}, finder(9), "2024-05-01T12:00:06.000000000Z")))
lines.append(dump(message(9, 32, "unlink", {"target": file("/tmp/y"), "parent_dir": file("/tmp")}, finder(9), "2024-05-01T12:00:07.000000000Z")))
lines.append(dump(message(9, 33, "write", {"target": file("/Users/alice/notes.txt")}, chrome(9), "2024-05-01T12:00:08.000000000Z")))
lines.append(dump(message(9, 41, "truncate", {"target": file("/Users/alice/notes.txt")}, chrome(9), "2024-05-01T12:00:09.000000000Z")))
lines.append(dump(message(9, 19, "link", {"source": file("/usr/local/bin/tool"), "target_dir": file("/usr/local/bin"),
                                         "target_filename": "tool2"}, zsh(9), "2024-05-01T12:00:10.000000000Z")))
lines.append(dump(message(9, 61, "clone", {"source": file("/Users/alice/big.iso"), "target_dir": file("/Users/alice/Backup"),
                                          "target_name": "big-copy.iso"}, finder(9), "2024-05-01T12:00:11.000000000Z")))
lines.append(dump(message(9, 14, "exchangedata", {"file1": file("/Users/alice/f1"), "file2": file("/Users/alice/f2")},
                          finder(9), "2024-05-01T12:00:12.000000000Z")))
lines.append(dump(message(11, 110, "copyfile", {"source": file("/Users/alice/src.txt"), "target_file": None,
                                               "target_dir": file("/Users/alice/dst"), "target_name": "src.txt", "mode": 420, "flags": 0},
                          finder(11), "2024-05-01T12:00:13.000000000Z")))
# A path that is not valid UTF-8: Latin-1 'é' (0xE9) as a raw byte.
lines.append(dump(message(9, 10, "open", {"fflag": 1, "file": file("/tmp/caf@@E9@@.txt")}, curl(9),
                          "2024-05-01T13:30:00.000000000Z")).replace(b"@@E9@@", b"\xe9"))
# Bad lines: cut short, not JSON, an event type no table maps, no process.
cut = dump(message(9, 10, "open", {"fflag": 1, "file": file("/etc/passwd")}, curl(9), "2024-05-01T13:30:01.000000000Z"))
lines.append(cut[: len(cut) // 2])
lines.append(b"this is not json")
lines.append(dump(message(9, 20, "mmap", {"protection": 1, "source": file("/usr/lib/libSystem.B.dylib")}, curl(9),
                          "2024-05-01T13:30:02.000000000Z")))
missing = message(9, 33, "write", {"target": file("/Users/alice/notes.txt")}, chrome(9), "2024-05-01T13:30:03.000000000Z")
del missing["process"]
lines.append(dump(missing))
# Version 1: no seq_num, no global_seq_num, no cwd; keys in a fixed odd order.
lines.append(dump(message(1, 9, "exec", {"target": process(1, 900, 500, "/usr/bin/python3", signing_id="com.apple.python3"),
                                        "args": ["python3", "-c", "print(\"hi\")"], "env": []},
                          zsh(1), "2024-05-01T13:30:04.000000000Z", shuffle=False)))
# A blank line is ignored, not counted as a problem.
lines.append(b"")

with open("sample.jsonl", "wb") as out:
    out.write(b"\n".join(lines) + b"\n")
