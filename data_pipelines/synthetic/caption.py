"""A one-sentence caption written from a clip's events, e.g.
"a metal ball bounces twice while a wooden block slides, in a room with a humming lamp"."""

from __future__ import annotations

from collections.abc import Sequence

_NUMBERS = {2: "twice", 3: "three times", 4: "four times", 5: "five times"}
_AMBIENCE = {
    "room": "in a room with a humming lamp",
    "rain": "as rain falls outside",
    "wind": "as the wind blows",
}


def _times(n: int) -> str:
    return _NUMBERS.get(n, f"{n} times")


def _noun(obj: dict) -> str:
    return f"{obj['adjective']} {obj['shape']}"


def _clause(obj: dict, objects: Sequence[dict], events: Sequence[dict]) -> str | None:
    mine = [e for e in events if e["object"] == obj["id"]]
    impacts = [e for e in mine if e["kind"] == "impact"]
    floor = sum(e["surface"] == "floor" for e in impacts)
    walls = sum(e["surface"] in ("wall", "ceiling") for e in impacts)
    others = []
    for e in impacts:
        if e["surface"] == "object" and e["other"] not in others:
            others.append(e["other"])
    verbs = []
    if floor == 1:
        verbs.append("drops onto the floor")
    elif floor > 1:
        verbs.append(f"bounces {_times(floor)}")
    if walls:
        verbs.append("hits the wall" + ("" if walls == 1 else f" {_times(walls)}"))
    if others:
        other = objects[others[0]]
        article = "the other" if _noun(other) == _noun(obj) else "the"
        verbs.append(f"knocks into {article} {_noun(other)}")
    if any(e["kind"] == "launch" for e in mine):
        verbs.append("is tossed up")
    for kind, verb in (("roll", "rolls"), ("slide", "slides")):
        if any(e["kind"] == kind for e in mine):
            verbs.append(verb)
    if not verbs:
        return None
    body = verbs[0] if len(verbs) == 1 else ", ".join(verbs[:-1]) + " and " + verbs[-1]
    return f"a {_noun(obj)} {body}"


def caption(objects: Sequence[dict], events: Sequence[dict], ambience: str) -> str:
    """objects: dicts with id, adjective, shape; events: annotation dicts in time order."""
    first = {
        o["id"]: min((e["time"] for e in events if e["object"] == o["id"]), default=1e9) for o in objects
    }
    clauses = [c for o in sorted(objects, key=lambda o: first[o["id"]]) if (c := _clause(o, objects, events))]
    if not clauses:
        sentence = "a still scene"
    elif len(clauses) == 1:
        sentence = clauses[0]
    else:
        sentence = ", ".join(clauses[:-1]) + " while " + clauses[-1]
    return f"{sentence}, {_AMBIENCE[ambience]}"
