"""The orthanc source against a real Orthanc: a StableStudy message per study
with the study, its series and instances (a filter leaves the other changes
out); `from: start` makes messages of the studies already there, `from: now`
only of those after its start; Orthanc stopped for 10 seconds mid-run is logged
once and once more when it is back, and no change is missed or made twice."""
import json
import os
import sqlite3
import subprocess
import sys
import time

BIN = os.environ["JUNCTION_BIN"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, wait_for  # noqa: E402
from orthanc_peer import Orthanc  # noqa: E402

check = Checks()
procs = []
tmp = engine_dir("junction-orthanc-changes-", {
    "studies": """channel: studies
source: { type: orthanc, server: main, changes: [StableStudy], expand: instances, from: start, poll_interval: 200ms }
destinations:
  - { name: out, type: file, directory: out/studies, filename: "${id}.json" }
""",
    "fresh": """channel: fresh
source: { type: orthanc, server: main, changes: [NewStudy], poll_interval: 200ms }
destinations:
  - { name: out, type: file, directory: out/fresh, filename: "${id}.json" }
"""})
orthanc = Orthanc(workdir=os.path.join(tmp, "orthanc")).start()
with open(f"{tmp}/junction.yaml", "a") as f:
    f.write(f"""orthanc:
  main: {{ url: "{orthanc.url}", username: {orthanc.user}, password: {orthanc.password}, timeout: 5s }}
""")
log_path = f"{tmp}/junction.log"
log = lambda: open(log_path).read()  # noqa: E731


def out(channel):
    """The messages written by a channel's file destination, oldest first."""
    folder = f"{tmp}/out/{channel}"
    if not os.path.isdir(folder):
        return []
    names = sorted(os.listdir(folder), key=lambda n: int(n.split(".")[0]))
    return [json.load(open(f"{folder}/{n}")) for n in names if n.endswith(".json")]


def studies(channel):
    return [m["change"]["ID"] for m in out(channel)]


try:
    before = orthanc.create_study("BEFORE")["ParentStudy"]
    engine = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    procs.append(engine)
    check(wait_for(lambda: "after change 0 (from: start)" in log(), 15), f"studies begins at the start:\n{log()}")
    check(wait_for(lambda: "(from: now)" in log(), 15), "fresh begins now")

    # StableStudy messages with the study JSON, the other changes left out.
    check(wait_for(lambda: studies("studies") == [before], 30), f"the study already there is a message: {studies('studies')}")
    second = orthanc.create_study("SECOND")
    check(wait_for(lambda: studies("studies") == [before, second["ParentStudy"]], 30),
          f"and the next one: {studies('studies')}")
    m = out("studies")[-1] if out("studies") else {}
    check(m.get("server") == "main" and m.get("change", {}).get("ChangeType") == "StableStudy",
          f"a StableStudy change of server main: {m.get('change')}")
    resource = m.get("resource") or {}
    check(resource.get("Type") == "Study" and resource.get("PatientMainDicomTags", {}).get("PatientID") == "SECOND",
          f"with the study: {resource.get('PatientMainDicomTags')}")
    series = resource.get("Series") or [{}]
    check(len(series) == 1 and series[0].get("Type") == "Series" and
          [i.get("ID") for i in series[0].get("Instances", [])] == [second["ID"]],
          f"its series and their instances: {series}")
    check(all(x["change"]["ChangeType"] == "StableStudy" for x in out("studies")), "only StableStudy changes")
    # from: now: the study that was there before is no message, the new one is.
    check(wait_for(lambda: studies("fresh") == [second["ParentStudy"]], 30), f"fresh: only the new study: {studies('fresh')}")

    # Orthanc stopped for 10 seconds mid-run.
    orthanc.stop()
    time.sleep(10)
    check(engine.poll() is None, "the engine goes on without Orthanc")
    orthanc.start()
    third = orthanc.create_study("THIRD")["ParentStudy"]
    fourth = orthanc.create_study("FOURTH")["ParentStudy"]
    expected = [before, second["ParentStudy"], third, fourth]
    check(wait_for(lambda: studies("studies") == expected, 60), f"after the outage every study once: {studies('studies')}")
    check(wait_for(lambda: studies("fresh") == expected[1:], 30), f"fresh too: {studies('fresh')}")
    for channel in ("studies", "fresh"):
        text = log()
        outage = text.count(f"[{channel}] error: orthanc server 'main' ({orthanc.url})")
        back = text.count(f"[{channel}] info: orthanc server 'main' answers again")
        check(outage == 1 and back == 1, f"{channel}: the outage logged once ({outage}), its end once ({back})")
    # Orthanc going away mid-request resets the connection; gone, it refuses the next.
    check(any(cause in log().lower() for cause in ("connection refused", "connection reset by peer")),
          "saying what is wrong")

    # The store: the positions at Orthanc's last change (the changes after the
    # last message are read past), one message per change kept.
    db = sqlite3.connect(f"file:{tmp}/var/junction.db?mode=ro", uri=True)

    def positions():
        return {k: json.loads(v).get("seq") for k, v in db.execute("SELECT key, value FROM source_marks")}

    last = None

    def caught_up():
        nonlocal_last = orthanc.last_change()
        globals()["last"] = nonlocal_last
        p = positions()
        return p.get("studies/orthanc") == nonlocal_last and p.get("fresh/orthanc") == nonlocal_last

    check(wait_for(caught_up, 30), f"both positions reach Orthanc's last change {last}: {positions()}")
    procs.remove(engine)
    engine.terminate()
    check(engine.wait(20) == 0, "the engine stops cleanly")
    for channel, n in (("studies", 4), ("fresh", 3)):
        sources = [r[0] for r in db.execute("SELECT source FROM messages WHERE channel = ?", (channel,))]
        check(len(sources) == n and len(set(sources)) == n, f"{channel}: {n} messages, each of its own change: {sources}")
    marks = dict(db.execute("SELECT key, value FROM source_marks"))
    for key in ("studies/orthanc", "fresh/orthanc"):
        mark = json.loads(marks.get(key, "{}"))
        check(mark == {"server": "main", "seq": last}, f"{key} stored at change {last} after the stop: {mark}")
finally:
    orthanc.stop()
    finish(procs, check, tmp)
check.exit()
