"""What the loader found on disk about one referenced file, as plain data for the checks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FileFact(BaseModel):
    """One project-relative path as the disk has it.

    ``error`` is empty when the file is usable; otherwise it says why not, in words meant for
    the person who wrote assets.json ("is not an image", "is a decompression bomb", "is a
    symlink that leaves the project"). A file that does not exist has ``exists=False`` and no
    error: whether that is a problem depends on the asset (a description lets it be generated).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    exists: bool = False
    is_image: bool = False
    width: int = 0
    height: int = 0
    format: str = ""
    error: str = ""
    # A file that does not exist may nearly match one that does (another case, another image
    # extension, one letter off): that path, for a "did you mean" instead of a generation.
    near: str = ""

    @property
    def usable(self) -> bool:
        """True when the file exists and is a readable image."""
        return self.exists and self.is_image and not self.error
