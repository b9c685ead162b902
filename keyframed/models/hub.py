"""What the Hugging Face Hub (or the mirror at ``HF_ENDPOINT``) says about a model file.

huggingface_hub does the parts it is good at: building the ``/resolve/`` URL (:func:`hf_hub_url`),
one HEAD for the file's metadata (:func:`get_hf_file_metadata`: size, ETag, which for LFS files is
the sha256 of the content, and the commit), the token (``HF_TOKEN``, the stored login,
``HF_HUB_DISABLE_IMPLICIT_TOKEN``, via :func:`build_hf_headers`) and its typed errors.

The bytes themselves are not fetched with ``hf_hub_download``: since huggingface_hub 1.18 it
downloads into a process-unique temp file that is deleted on failure, so an interrupted 20 GB
download starts again from zero on the next run; it checks only the size, not the sha256; and
with ``local_dir`` it recreates the repository's folder tree instead of ComfyUI's flat
``models/<folder>/<name>``. :mod:`keyframed.models.download` therefore keeps its own
``.part`` file and resumes it with HTTP ``Range`` requests across runs, using plain httpx (a
declared dependency, whatever HTTP client the installed huggingface_hub uses internally).

``HF_ENDPOINT`` is read by huggingface_hub once, at import; it is read here at call time and
passed explicitly as ``endpoint=`` so that a mirror set later (or per test) is honoured.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

# huggingface_hub.utils exports lazily (module __getattr__), which mypy cannot follow.
from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

from keyframed.errors import DownloadError
from keyframed.models.manifest import ModelFile

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RemoteFile:
    """The hub's answer to a HEAD on a file's ``/resolve/`` URL.

    Attributes:
        url: The resolve URL the bytes are fetched from.
        size: Size in bytes, if the hub said.
        etag: The ETag (``X-Linked-Etag`` for LFS files), unquoted.
        sha256: The ETag when it is a sha256 (LFS files), else ``None``.
        commit: The commit the revision resolved to.
    """

    url: str
    size: int | None
    etag: str | None
    sha256: str | None
    commit: str | None


def endpoint() -> str:
    """The hub's base URL: ``HF_ENDPOINT`` now, else huggingface_hub's configured default."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or constants.ENDPOINT


def file_url(file: ModelFile) -> str:
    """The ``{endpoint}/{repo}/resolve/{revision}/{path}`` URL of a file."""
    return hf_hub_url(file.repo, file.path, revision=file.revision, endpoint=endpoint())


def request_headers() -> dict[str, str]:
    """Headers for a GET of file bytes: user agent, token if any, no compression.

    ``Accept-Encoding: identity`` because a compressed body would break byte ranges and sizes.
    """
    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"
    return headers


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is on, now or when huggingface_hub was imported."""
    now = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return now or constants.is_offline_mode()


def download_timeout() -> float:
    """Seconds to wait for bytes: ``HF_HUB_DOWNLOAD_TIMEOUT``, else huggingface_hub's default."""
    try:
        return float(os.environ["HF_HUB_DOWNLOAD_TIMEOUT"])
    except (KeyError, ValueError):
        return float(constants.HF_HUB_DOWNLOAD_TIMEOUT)


def remote_file(file: ModelFile) -> RemoteFile:
    """Ask the hub for a file's size, ETag and commit (one HEAD).

    Raises:
        DownloadError: The repo, revision or file does not exist, access is refused, the hub
            cannot be reached, or offline mode is on; the message says which and what to do.
    """
    url = file_url(file)
    if offline():
        raise DownloadError(explain_failure(file, OfflineModeIsEnabled("HF_HUB_OFFLINE is set")))
    try:
        meta = get_hf_file_metadata(url, endpoint=endpoint())
    except Exception as exc:  # any failure of the HEAD, typed or a transport error, ends here
        raise DownloadError(explain_failure(file, exc)) from exc
    etag = meta.etag.strip('"') if meta.etag else None
    sha = etag.lower() if etag and _SHA256.fullmatch(etag.lower()) else None
    return RemoteFile(url=url, size=meta.size, etag=etag, sha256=sha, commit=meta.commit_hash)


def explain_failure(file: ModelFile, exc: BaseException) -> str:
    """Turn an error from the hub into a message naming the repo, the path and the fix."""
    where = f"{file.repo} → {file.path} (revision {file.revision}) at {endpoint()}"
    fix = f"put the file in ComfyUI/models/{file.rel_path} by hand"
    # GatedRepoError is a RepositoryNotFoundError: test it first.
    if isinstance(exc, GatedRepoError):
        return (f"{where}: the repository is gated. Accept its terms at {endpoint()}/{file.repo}, "
                f"then set HF_TOKEN (or run `hf auth login`) and try again.")
    if isinstance(exc, RepositoryNotFoundError):
        return (f"{where}: repository not found (HTTP 404 RepoNotFound). It may have been renamed, "
                f"removed or made private; check {endpoint()}/{file.repo}, set HF_TOKEN if it is "
                f"private, or {fix}.")
    if isinstance(exc, RevisionNotFoundError):
        return f"{where}: revision not found (HTTP 404 RevisionNotFound); {fix}."
    if isinstance(exc, EntryNotFoundError):
        return (f"{where}: file not found in the repository (HTTP 404 EntryNotFound). It may have "
                f"been renamed; look at {endpoint()}/{file.repo}/tree/{file.revision} and {fix}.")
    if isinstance(exc, OfflineModeIsEnabled):
        return f"{where}: HF_HUB_OFFLINE is set, so the hub cannot be asked; unset it to download."
    if isinstance(exc, HfHubHTTPError):
        return f"{where}: the hub refused the request: {exc}"
    return (f"{where}: cannot reach the hub ({type(exc).__name__}: {exc}); "
            "check the network and HF_ENDPOINT.")


def explain_status(file: ModelFile, status: int, error_code: str | None) -> str:
    """Explain an HTTP error status met while fetching the bytes (after a good HEAD)."""
    where = f"{file.repo} → {file.path} (revision {file.revision}) at {endpoint()}"
    if status in (401, 403):
        return (f"{where}: access refused (HTTP {status}); "
                "set HF_TOKEN if the repository is private or gated.")
    if status == 404:
        kinds = {"RepoNotFound": "repository", "RevisionNotFound": "revision"}
        what = kinds.get(error_code or "", "file")
        return (f"{where}: {what} not found (HTTP 404 {error_code or ''}) while downloading; "
                f"check {endpoint()}/{file.repo} or put the file in "
                f"ComfyUI/models/{file.rel_path} by hand.")
    return f"{where}: the server answered HTTP {status} while downloading."
