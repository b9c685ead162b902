"""What ``asset-sheet.png`` shows: every asset of assets.json, by type, with its state.

The picture a director looks at before dropping ``assets.approved``: each asset image (given
by the user or generated in Phase 2.5), its name under it, its type as the row heading, and its
state in the words the contact sheets use (``done``, ``queued``, ``running``, ``failed``,
``stale``, ...; ``given`` for an image the user supplied, ``unused`` for an asset with no image
that no plannable scene uses, so nothing will generate it). An approved asset (its image is the
one ``assets.approved`` bound to) has the ``APPROVED`` badge. The candidates of an asset retried
with ``--takes N`` follow the live image in its row. Drawing is :mod:`keyframed.render.contact`'s
job; this module only decides the rows and the line under the title.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from keyframed.daemon.snapshot import Snapshot
from keyframed.handlers.approvals import ASSETS_MARKER
from keyframed.handlers.project import ASSET_TYPES, Asset
from keyframed.handlers.verdict import PlanItem
from keyframed.render import contact

ASSET_SHEET = "asset-sheet.png"
GIVEN = "given"
UNUSED = "unused"
StateOf = Callable[[PlanItem], str]
# ``assets/styles/takes/ghibli.take-2.png`` -> ``assets/styles/ghibli.png``
_TAKE = re.compile(r"^(?P<folder>.*/)?takes/(?P<stem>.+)\.take-\d+(?P<ext>\.[^./]+)?$")


def live_path(path: str) -> str:
    """The live file a kept take's path belongs to (the path itself when it is no take)."""
    match = _TAKE.match(path)
    if match is None:
        return path
    return f"{match['folder'] or ''}{match['stem']}{match['ext'] or ''}"


def _approved(snap: Snapshot, path: str) -> bool:
    bound = snap.approvals.assets
    current = snap.hashes.get(path)
    return bound is not None and current is not None and bound.get(path) == current


def _tile(snap: Snapshot, path: str, caption: str, state: str) -> contact.Tile:
    digest = snap.hashes.get(path)
    # A path with no hash is missing, or leads outside the project: nothing to draw.
    return contact.Tile(path=snap.root / path if digest else None, caption=caption,
                        state=state, approved=_approved(snap, path), digest=digest)


def asset_tiles(snap: Snapshot, asset: Asset, state_of: StateOf,
                items: dict[str, list[PlanItem]]) -> list[contact.Tile]:
    """One asset's tiles: its image, then any candidate takes (``items``: the asset
    artifacts by the live path they belong to)."""
    path = asset.output_path
    built = sorted(items.get(path, []), key=lambda i: (i.path != path, i.artifact.recipe.take))
    if not built or built[0].path != path:
        # No artifact: the user's image, or one nothing will generate.
        state = GIVEN if snap.hashes.get(path) else UNUSED
        return [_tile(snap, path, asset.name, state)]
    return [_tile(snap, i.path, _caption(snap, asset, i), state_of(i)) for i in built]


def _caption(snap: Snapshot, asset: Asset, item: PlanItem) -> str:
    """``ghibli``; once it has several takes ``ghibli take 2`` (``picked`` on the take a
    ``.pick`` file chose), as the scene sheets caption takes."""
    take = item.artifact.recipe.take
    if snap.picked.get(item.path) == take:
        return f"{asset.name} take {take} picked"
    return f"{asset.name} take {take}" if take or item.path != asset.output_path else asset.name


def asset_rows(snap: Snapshot, state_of: StateOf) -> list[tuple[str, list[contact.Tile]]]:
    """(heading, tiles) per asset type that has assets, in the project model's type order."""
    if snap.project is None:
        return []
    by_live: dict[str, list[PlanItem]] = {}
    for item in snap.items:
        if item.artifact.kind == "asset":
            by_live.setdefault(live_path(item.path), []).append(item)
    rows: list[tuple[str, list[contact.Tile]]] = []
    for type_ in ASSET_TYPES:
        assets = [a for a in snap.project.assets.assets.values() if a.type == type_]
        if assets:
            tiles = [t for a in assets for t in asset_tiles(snap, a, state_of, by_live)]
            rows.append((f"{type_} ({len(assets)})", tiles))
    return rows


def approval_line(snap: Snapshot, rows: list[tuple[str, list[contact.Tile]]]) -> str:
    """Where the asset checkpoint stands, for the line under the sheet's title."""
    if snap.approvals.mode == "auto":
        return "approval = auto: keyframe work does not wait for " + ASSETS_MARKER
    if snap.approvals.assets is None:
        return f"{ASSETS_MARKER} not dropped yet: keyframe work waits for it"
    pending = [t for _, tiles in rows for t in tiles
               if t.path is not None and not t.approved and ".take-" not in t.path.name]
    if pending:
        return (f"{ASSETS_MARKER} is stale: {len(pending)} image(s) changed or added since; "
                "drop it again to approve them")
    return f"{ASSETS_MARKER}: every asset image approved"
