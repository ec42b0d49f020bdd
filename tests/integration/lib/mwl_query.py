"""A modality's worklist query, as the integration tests make it: DCMTK's
findscu against Junction's MWL (AE JUNCTION), the answers read with pydicom."""
import glob
import os
import shutil
import subprocess

import pydicom


def findscu(check, port, keys, out):
    """Queries with `keys` (findscu -k), writing the answers to the folder
    `out`; checks that findscu succeeded and returns the answers, in the
    order of their files."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    args = ["findscu", "-W", "-aec", "JUNCTION", "-X", "-od", out]
    for k in keys:
        args += ["-k", k]
    r = subprocess.run(args + ["127.0.0.1", str(port)], capture_output=True, text=True,
                       env=dict(os.environ, TCP_NODELAY="1"))
    check(r.returncode == 0, f"findscu {keys}: {r.stderr[-500:]}")
    return [pydicom.dcmread(f) for f in sorted(glob.glob(f"{out}/*"))]
