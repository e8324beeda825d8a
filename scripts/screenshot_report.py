"""Regenerate docs/images/html-report.png: the HTML report of demo/ as headless Chromium shows it.

    python scripts/screenshot_report.py [--output docs/images/html-report.png] [--keep report.html]

Runs `exhunt detect demo/ --html` (the shipped rules, default --context) into a temporary
folder and screenshots the page at 1280x2000 with the network off. Needs `chromium` on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "images" / "html-report.png")
    parser.add_argument("--keep", type=Path, help="also keep the report's HTML here")
    parser.add_argument("--size", default="1280,2000", help="window size, WIDTH,HEIGHT")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="exhunt-shot-") as tmp:
        page = Path(tmp) / "report.html"
        # this checkout's exhunt, whichever one the interpreter has installed
        path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
        subprocess.run([sys.executable, "-m", "exhunt", "detect", str(REPO / "demo"), "-q",
                        "-o", str(Path(tmp) / "alerts.txt"), "--html", str(page)],
                       check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": path})
        args.output.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={args.output}",
                        f"--window-size={args.size}", page.as_uri()],
                       check=True, timeout=180, capture_output=True)
        if args.keep is not None:
            shutil.copyfile(page, args.keep)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
