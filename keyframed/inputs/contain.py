"""Does a project-relative path lead outside the project folder through a symlink?

The daemon reads only inside the project (DESIGN §2): a symlink, of a file or of any folder on
the way, that resolves outside it is treated as if nothing were there, and reported. Symlinks
that stay inside are fine. A :class:`Containment` answers for many paths with few system calls:
one ``lstat`` per file, and each folder is looked at once (folders are resolved only when they
are symlinks), so it is cheap enough for every reconcile pass.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path


class Containment:
    """Answers "does this path escape the project?" for one project, caching folders.

    Make a new one for each pass: the cache does not notice a folder swapped afterwards.
    """

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.real_root = os.path.realpath(root)
        self._folders: dict[str, bool] = {"": False}

    def inside(self, real: str) -> bool:
        """True when a resolved absolute path is the project folder or below it."""
        base = self.real_root.rstrip(os.sep)
        return real == self.real_root or real.startswith(base + os.sep)

    def escapes(self, rel: str) -> bool:
        """True when ``rel`` (a relative POSIX path) resolves outside the project."""
        folder, _ = posixpath.split(rel)
        if self.folder_escapes(folder):
            return True
        path = os.path.join(self.root, rel)
        return os.path.islink(path) and not self.inside(os.path.realpath(path))

    def folder_escapes(self, folder: str) -> bool:
        """True when the folder ``folder`` (relative, POSIX) resolves outside the project."""
        known = self._folders.get(folder)
        if known is not None:
            return known
        parent, _ = posixpath.split(folder)
        path = os.path.join(self.root, folder)
        result = self.folder_escapes(parent) or (
            os.path.islink(path) and not self.inside(os.path.realpath(path)))
        self._folders[folder] = result
        return result
