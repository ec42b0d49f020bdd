#!/usr/bin/env bash
# Dry run of the shipped ris-worklist channel on the sample orders: the
# transformer's output for the worklist destination, checked field by field.
set -u
BIN="${JUNCTION_BIN:?}"
SRC="${JUNCTION_SOURCE_DIR:?}"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }

# run SAMPLE: dry run one sample; the JSON line the destination would get goes to $T/<sample>.json
run() {
  local name="$1"
  if "$BIN" test "$SRC/channels/ris-worklist.yaml" --config "$SRC/junction.yaml" \
       --input "$SRC/samples/hl7/$name.hl7" >"$T/$name.out" 2>"$T/$name.err"; then ok; else
    bad "junction test $name failed"; sed 's/^/  | /' "$T/$name.out" "$T/$name.err" | head -10; fi
  grep -A1 -- "-- worklist: would send" "$T/$name.out" | tail -1 > "$T/$name.json"
}

# check SAMPLE PYTHON: assertions on `d`, the decoded JSON
check() {
  if /usr/bin/python3 - "$T/$1.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[2])
PY
  then ok; else bad "$1: assertions failed"; sed 's/^/  | /' "$T/$1.json"; fi
}

run orm_o01_nw
check orm_o01_nw '
assert "action" not in d, d
assert d["status"] == "SCHEDULED"
assert d["PatientID"] == "MRN482913" and d["IssuerOfPatientID"] == "CITYHOSP"
assert d["PatientName"] == "DOE^JANE^MARIE^MRS", d["PatientName"]
assert d["PatientBirthDate"] == "19770101" and d["PatientSex"] == "F"
assert d["AccessionNumber"] == "ACC20261123001"
assert d["RequestedProcedureID"] == "RP77881201"
assert d["RequestedProcedureDescription"] == "CT Chest without contrast"
assert d["RequestedProcedureCodeSequence"] == [{"CodeValue": "CTCHEST", "CodingSchemeDesignator": "L", "CodeMeaning": "CT Chest without contrast"}]
assert d["StudyInstanceUID"] == "1.2.826.0.1.3680043.10.1001.20261123.1"
assert d["ReferringPhysicianName"] == "WELBY^MARCUS^J^DR", d["ReferringPhysicianName"]
assert d["SpecificCharacterSet"] == "ISO_IR 100"
sps = d["ScheduledProcedureStepSequence"]
assert len(sps) == 1
s = sps[0]
assert s["Modality"] == "CT" and s["ScheduledProcedureStepID"] == "SPS7788120101"
assert s["ScheduledProcedureStepStartDate"] == "20261123" and s["ScheduledProcedureStepStartTime"] == "093000"
'

run orm_o01_xo
check orm_o01_xo '
assert "action" not in d and "status" not in d
assert d["AccessionNumber"] == "ACC20261123001" and d["RequestedProcedureID"] == "RP77881201"
assert d["RequestedProcedureCodeSequence"][0]["CodeValue"] == "CTCHESTC"
assert d["RequestedProcedureDescription"] == "CT Chest with contrast"
'

run orm_o01_ca
check orm_o01_ca '
assert d == {"action": "cancel", "AccessionNumber": "ACC20261123001", "StudyInstanceUID": "1.2.826.0.1.3680043.10.1001.20261123.1"}, d
'

run orm_o01_sc
check orm_o01_sc 'assert d["action"] == "in_progress" and d["AccessionNumber"] == "ACC20261123001", d'

run omi_o23
check omi_o23 '
assert d["PatientID"] == "MRN559031" and d["PatientName"] == "SMITH^JOHN^A^^JR", d["PatientName"]
assert d["PatientSex"] == "M" and d["PatientBirthDate"] == "19650315"
assert d["AccessionNumber"] == "ACC20261123002"           # IPC-1
assert d["RequestedProcedureID"] == "RP99002101"          # IPC-2
assert d["StudyInstanceUID"] == "1.2.826.0.1.3680043.10.1001.20261123.2"  # IPC-3
assert d["ReferringPhysicianName"] == "HOUSE^GREGORY^^DR"
s = d["ScheduledProcedureStepSequence"][0]
assert s["Modality"] == "MR" and s["ScheduledProcedureStepID"] == "SPS9900210101"
assert s["ScheduledProcedureStepStartDate"] == "20261123" and s["ScheduledProcedureStepStartTime"] == "100000"  # TQ1-7
assert s["ScheduledStationAETitle"] == "MR1"
'

# An order without a study UID gets a new one; a non-order is filtered.
tr '\r' '\n' < "$SRC/samples/hl7/orm_o01_nw.hl7" | grep -v '^ZDS' | tr '\n' '\r' > "$T/nouid.hl7"
"$BIN" test "$SRC/channels/ris-worklist.yaml" --config "$SRC/junction.yaml" --input "$T/nouid.hl7" > "$T/nouid.out" 2>&1 && ok || bad "order without ZDS"
grep -A1 -- "-- worklist: would send" "$T/nouid.out" | tail -1 > "$T/nouid.json"
check nouid 'import re; assert re.fullmatch(r"2\.25\.\d+", d["StudyInstanceUID"]), d["StudyInstanceUID"]'
"$BIN" test "$SRC/channels/ris-worklist.yaml" --config "$SRC/junction.yaml" --input "$SRC/samples/hl7/adt_a04.hl7" > "$T/adt.out" 2>&1 && ok || bad "ADT dry run"
grep -q "status: FILTERED (ADT^A04 is not an order)" "$T/adt.out" && ok || bad "ADT is filtered"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
