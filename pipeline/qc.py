"""QC of the preservation master: MediaConch's policy checker with infra/qc/ffv1-master.xml.

The policy (MediaConch policy XML, MediaInfo field names) asks for what README promises of
the `.mkv` master: Matroska with CRC-32 elements (General `extra/ErrorDetectionType` =
"Per level 1"), FFV1 version 3.x (`Format_Version`), intra only (`Format_Settings_GOP` =
"N=1"), a CRC per slice (Video `extra/ErrorDetectionType` = "Per slice"), lossless
(`Compression_Mode`), and the four colour tags present (`colour_primaries`,
`transfer_characteristics`, `matrix_coefficients`, `colour_range`). Audio is not
restricted. FFmpeg's Matroska muxer writes the CRC-32 elements with `fflags +bitexact`
too (its `write_crc32` option, default on; bitexact only drops the random UIDs and dates).

`mediaconch` (Debian package `mediaconch`) must be installed; it is run with `--Force` and
a throwaway HOME, so a report cached in MediaConch's database for an earlier file at the
same path is never reused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

from pipeline import storage
from pipeline.errors import FilmcolorError

# The policy in the source tree. An installed package (the Docker image's `pip install .`)
# has no infra/ beside it: there FILMCOLOR_QC_POLICY names the file.
POLICY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "infra", "qc",
                      "ffv1-master.xml")
POLICY_ENV = "FILMCOLOR_QC_POLICY"
TIMEOUT_S = 3600


class QCError(FilmcolorError):
    """The QC itself could not run (mediaconch missing or failing), not a QC verdict."""


def mediaconch_path() -> str:
    exe = os.environ.get("FILMCOLOR_MEDIACONCH") or shutil.which("mediaconch")
    if not exe or not os.path.exists(exe):
        raise QCError("mediaconch is not installed: the master's QC needs MediaArea's MediaConch "
                      "(apt-get install mediaconch)")
    return exe


def policy_path() -> str:
    policy = os.environ.get(POLICY_ENV) or POLICY
    if not os.path.isfile(policy):
        raise QCError(f"{policy}: the master's QC policy is missing (set {POLICY_ENV} to infra/qc/ffv1-master.xml)")
    return policy


def check_master(path: str, policy: str | None = None) -> tuple[bool, str]:
    """Check the master at `path` against the MediaConch policy (default: POLICY, or the
    file FILMCOLOR_QC_POLICY names). Returns (passed, text): on failure one line per
    failing rule, with the value MediaInfo found; "" on a pass. An s3:// master is copied
    to local scratch first (MediaConch reads files only)."""
    exe = mediaconch_path()
    policy = policy or policy_path()
    if storage.is_s3(path):
        with storage.local_copy(path) as local:
            return _check_local(exe, local, policy, path)
    if not os.path.isfile(path):
        raise QCError(f"{path}: no such file")
    return _check_local(exe, path, policy, path)


def _check_local(exe: str, local: str, policy: str, shown: str) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="filmcolor-mediaconch-") as home:
        env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": os.path.join(home, ".config"),
               "XDG_DATA_HOME": os.path.join(home, ".local", "share")}
        try:
            proc = subprocess.run([exe, "--Force", "-p", policy, "-fx", local], capture_output=True,
                                  text=True, env=env, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise QCError(f"{shown}: mediaconch did not finish in {TIMEOUT_S} s") from None
    return parse_report(proc.stdout, shown, proc.returncode, proc.stderr)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_report(xml_text: str, shown: str, returncode: int = 0, stderr: str = "") -> tuple[bool, str]:
    """(passed, failing rules as text) from `mediaconch -p POLICY -fx` output."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        detail = (stderr or xml_text).strip().splitlines()
        raise QCError(f"{shown}: mediaconch gave no report (exit {returncode})"
                      + (f": {detail[-1]}" if detail else "")) from None
    policies = [e for e in root.iter() if _local(e.tag) == "policy"]
    if not policies:
        raise QCError(f"{shown}: mediaconch's report has no policy result (is {POLICY} a policy?)")
    top = policies[0]
    passed = top.get("outcome") == "pass"
    lines = []
    for rule in top.iter():
        if _local(rule.tag) != "rule" or rule.get("outcome") == "pass":
            continue
        requested = rule.get("requested") or ""
        op = rule.get("operator") or "exists"
        want = op if op in ("exists", "must not exist") else f"{op} {requested!r}"
        actual = rule.get("actual")
        found = f"found {actual!r}" if actual else "found nothing"
        lines.append(f"{shown}: {rule.get('outcome')}: {rule.get('name')} ({found}, wanted {want})")
    if not passed and not lines:
        lines.append(f"{shown}: {top.get('outcome')}: {top.get('name')}")
    return passed, "\n".join(lines)
