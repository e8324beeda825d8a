"""Make `signify` importable where its crypto backend cannot read OpenSSL's version.

signify verifies signatures through `oscrypto`, whose last release (1.3.0) finds the OpenSSL
version with a pattern that allows one digit per part: "OpenSSL 3.0.19" (Debian's, and any
OpenSSL from 3.0.10 on) fails with "Error detecting the version of libcrypto" and nothing of
signify imports. The fix upstream (two-digit parts) was never released. Where, and only
where, that exact failure happens, this module loads oscrypto's version module once more with
the corrected pattern; Windows and macOS use other backends and never need it. When the
pattern is not found (a newer oscrypto) nothing is changed and the original error stands.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

_OLD = "'\\\\b(\\\\d\\\\.\\\\d\\\\.\\\\d[a-z]*)\\\\b'"
_NEW = "'\\\\b(\\\\d+\\\\.\\\\d+\\\\.\\\\d+[a-z]*)\\\\b'"
_LOCK = threading.Lock()
_STATE: dict[str, str | None] = {}


def _import_asymmetric() -> None:
    importlib.import_module("oscrypto.asymmetric")


def _patch_version_module() -> None:
    """Load oscrypto's libcrypto binding with the two-digit version pattern."""
    from oscrypto import ffi  # the package itself imports fine; only its OpenSSL binding fails

    name = "oscrypto._openssl._libcrypto_cffi" if ffi() == "cffi" else "oscrypto._openssl._libcrypto_ctypes"
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.origin is None:
        raise ImportError(f"{name} not found")
    source = spec.loader.get_source(name)  # type: ignore[attr-defined]
    if not source or _OLD not in source:
        raise ImportError("oscrypto's version check is not the one this workaround knows")
    module = importlib.util.module_from_spec(spec)
    code = compile(source.replace(_OLD, _NEW, 1), spec.origin, "exec")
    exec(code, module.__dict__)
    sys.modules[name] = module


def crypto_problem() -> str | None:
    """None when signify can be imported (patching oscrypto once if needed), else why not."""
    with _LOCK:
        if "problem" in _STATE:
            return _STATE["problem"]
        problem: str | None = None
        try:
            _import_asymmetric()
        except ImportError as exc:
            problem = f"the signature library is not installed ({exc.name or exc})"
        except Exception as exc:
            if "version of libcrypto" not in str(exc):
                problem = f"the signature library could not start: {type(exc).__name__}"
            else:
                try:
                    _patch_version_module()
                    _import_asymmetric()
                except Exception as again:
                    problem = f"the signature library cannot use this system's OpenSSL ({type(again).__name__})"
        if problem is None:
            try:
                importlib.import_module("signify.authenticode")
            except Exception as exc:
                problem = f"the signature library could not start: {type(exc).__name__}"
        _STATE["problem"] = problem
        return problem
