"""Axis bookkeeping for reshapes: which labels each output axis of a view / reshape / flatten /
squeeze / unsqueeze holds, found from the example's shapes (views never reorder memory, so
matching products of sizes left to right is exact once batch and time are > 1)."""

from __future__ import annotations

from rnnslim.capture.errors import CaptureError

Axes = tuple[tuple[str, ...], ...]


def _is_feature(label: str) -> bool:
    return label.startswith("F") and ":" not in label


def regroup(axes: Axes, in_shape: tuple[int, ...], out_shape: tuple[int, ...], sizes: dict[str, int]) -> Axes:
    """Labels of each output axis of a reshape from `in_shape` (labelled `axes`) to `out_shape`.

    A time or batch axis of size 1 in the example cannot be told apart from an inserted one once
    merged: such a reshape raises CaptureError (give example inputs with batch and time > 1)."""
    atoms: list[tuple[str, int]] = []
    for group, size in zip(axes, in_shape):
        if len(group) == 1:
            atoms.append((group[0], int(size)))
        else:
            atoms += [(label, sizes[label]) for label in group]
    out: list[tuple[str, ...]] = []
    i = 0
    for size in out_shape:
        group, p = [], 1
        while i < len(atoms) and (p < size or (atoms[i][1] == 1 and size != 1 and not group)):
            group.append(atoms[i][0])
            p *= atoms[i][1]
            i += 1
        if p != size:
            raise CaptureError(f"a reshape from {list(in_shape)} to {list(out_shape)} splits an axis that is not "
                               "a merge of time, batch and features")
        out.append(tuple(group))
    while i < len(atoms) and atoms[i][1] == 1:  # trailing size-1 labels dropped by a squeeze
        i += 1
    if i != len(atoms):
        raise CaptureError(f"a reshape from {list(in_shape)} to {list(out_shape)} cannot be followed axis by axis")
    unit = {label for label, size in atoms if size == 1 and not _is_feature(label)}
    if unit and (tuple(in_shape) != tuple(out_shape) and any(
            len(group) > 1 and unit & set(group) for group in out) or unit - {x for g in out for x in g}):
        raise CaptureError(f"a reshape from {list(in_shape)} to {list(out_shape)} merges or drops an axis of size 1 "
                           "in the example; give example inputs with batch and time > 1 so that it can be followed")
    return tuple(out)
