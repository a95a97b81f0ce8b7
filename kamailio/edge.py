"""app_python3 entry script: makes the trunkedge package importable, then hands over.

Kamailio embeds Debian's /usr/bin/python3; our dependencies live in the project's
virtual environment (built with that interpreter), so its site-packages is added here.
"""

import os
import site
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_VENV = Path(os.environ.get("TRUNKEDGE_VENV") or _ROOT / ".venv")
for _site in sorted(_VENV.glob("lib/python3*/site-packages")):
    site.addsitedir(str(_site))
if str(_ROOT / "kemi") not in sys.path:
    sys.path.insert(0, str(_ROOT / "kemi"))

from trunkedge.kamailio.adapter import mod_init  # noqa: E402

if os.environ.get("TRUNKEDGE_PROFILE_DIR"):  # bench/per_step.py: steps timed, never in production
    sys.path.insert(0, str(_ROOT / "bench"))
    from steps import instrument

    mod_init = instrument(mod_init)

__all__ = ["mod_init"]
