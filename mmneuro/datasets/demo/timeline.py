"""What happens when in a stimulus run: scenes, audiovisual blocks, objects, sounds, narration."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

from mmneuro.datasets.demo.spec import COLOURS, DIRECTIONS, SHAPES, SIZE
from mmneuro.stimuli.words import Words


@dataclass
class MovingObject:
    onset: float
    offset: float
    colour: int
    shape: str
    radius: float
    x0: float
    y0: float
    move_onset: float = np.inf  # inf: never moves
    direction: str | None = None
    speed: float = 0.0  # pixels per second

    def position(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        moving = np.clip(np.asarray(t, dtype=np.float64) - self.move_onset, 0.0, None)
        dx, dy = DIRECTIONS[self.direction] if self.direction else (0.0, 0.0)
        return self.x0 + dx * self.speed * moving, self.y0 + dy * self.speed * moving


@dataclass
class Sound:
    kind: str  # "tone", "noise" or "am"
    onset: float
    offset: float
    freq: float = 0.0  # tone / AM carrier pitch, Hz (0 = noise carrier)
    am_onset: float = np.inf  # modulation starts here (tones of moving objects)
    am_rate: float = 5.0


@dataclass
class Timeline:
    """Everything that happens in one stimulus run (seconds on the run's clock)."""

    duration: float
    cuts: np.ndarray  # scene onsets, first is 0
    backgrounds: np.ndarray  # (n_scenes, 3) uint8
    blocks: list[tuple[float, float, bool]]  # (start, end, congruent)
    objects: list[MovingObject]
    sounds: list[Sound]
    words: Words
    f0: list[float] = field(default_factory=list)  # narration pitch per word

    def congruent_at(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        out = np.zeros(t.shape, dtype=bool)
        for start, end, congruent in self.blocks:
            if congruent:
                out |= (t >= start) & (t < end)
        return out

    def to_json(self) -> dict:
        return {
            "duration": self.duration,
            "scene_cuts": [round(float(c), 4) for c in self.cuts],
            "backgrounds_rgb": self.backgrounds.tolist(),
            "blocks": [{"start": round(s, 4), "end": round(e, 4), "congruent": c} for s, e, c in self.blocks],
            "objects": [
                {
                    "onset": round(o.onset, 4),
                    "offset": round(o.offset, 4),
                    "colour": COLOURS[o.colour][0],
                    "shape": o.shape,
                    "radius_px": round(o.radius, 3),
                    "start_xy_px": [round(o.x0, 3), round(o.y0, 3)],
                    "move_onset": None if not np.isfinite(o.move_onset) else round(o.move_onset, 4),
                    "direction": o.direction,
                    "speed_px_per_s": round(o.speed, 3),
                }
                for o in self.objects
            ],
            "sounds": [
                {
                    "kind": s.kind,
                    "onset": round(s.onset, 4),
                    "offset": round(s.offset, 4),
                    "freq_hz": round(s.freq, 3),
                    "am_onset": None if not np.isfinite(s.am_onset) else round(s.am_onset, 4),
                    "am_rate_hz": round(s.am_rate, 3),
                }
                for s in self.sounds
            ],
        }


def _background(rng: np.random.Generator, previous_value: float | None) -> tuple[list[int], float]:
    """A flat background colour whose HSV value differs visibly (>= 0.2) from the previous one."""
    hue, sat = rng.uniform(0, 1), rng.uniform(0.1, 0.45)
    value = rng.uniform(0.12, 0.9)
    while previous_value is not None and abs(value - previous_value) < 0.2:
        value = rng.uniform(0.12, 0.9)
    return [round(255 * c) for c in colorsys.hsv_to_rgb(hue, sat, value)], value


def _scene_lengths(rng: np.random.Generator, length: float) -> list[float]:
    """Scene durations (4-12 s draws) filling ``length`` s; a remainder under 4 s joins the last scene."""
    out: list[float] = []
    left = length
    while left > 0:
        d = rng.uniform(4.0, 12.0)
        if left - d < 4.0:
            d = left
        out.append(d)
        left -= d
    return out


def _scenes_and_blocks(
    rng: np.random.Generator, duration: float
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, bool]]]:
    """Scene cuts, backgrounds and congruence blocks, with picture content balanced across conditions.

    Blocks (20-40 s) come in pairs, one congruent and one incongruent (the condition alternates
    from block to block, the first drawn at random). The second block of a pair shows the first
    block's scenes in reverse order with the same durations, so every background is on screen
    exactly as long in the congruent as in the incongruent condition: the picture carries no
    information about the condition (the scene at the centre of a pair continues across the
    block boundary, without a cut). A remainder too short for another pair is shared by the
    last pair.
    """
    blocks: list[tuple[float, float, bool]] = []
    segments: list[tuple[float, list[int]]] = []  # (onset, rgb); consecutive equal colours merge
    t, congruent, value = 0.0, bool(rng.random() < 0.5), None
    while duration - t > 1e-9:
        left = duration - t
        length = min(rng.uniform(20.0, 40.0), left / 2)
        if left - 2 * length < 40.0:  # no room for another pair of >= 20 s blocks
            length = left / 2
        lengths = _scene_lengths(rng, length)
        colours = []
        for _ in lengths:
            rgb, value = _background(rng, value)
            colours.append(rgb)
        onset = t
        for d, rgb in zip(lengths, colours):
            segments.append((onset, rgb))
            onset += d
        for d, rgb in zip(lengths[::-1], colours[::-1]):
            segments.append((onset, rgb))
            onset += d
        blocks.append((t, t + length, congruent))
        blocks.append((t + length, min(t + 2 * length, duration), not congruent))
        value = colorsys.rgb_to_hsv(*(c / 255 for c in colours[0]))[2]  # the pair ends on its first scene
        t = blocks[-1][1]
    cuts, backgrounds = [], []
    for onset, rgb in segments:
        if backgrounds and backgrounds[-1] == rgb:
            continue
        cuts.append(onset)
        backgrounds.append(rgb)
    return np.asarray(cuts), np.asarray(backgrounds, dtype=np.uint8), blocks


def _objects(rng: np.random.Generator, duration: float) -> list[MovingObject]:
    objects: list[MovingObject] = []
    t = rng.uniform(0.5, 2.0)
    while t < duration - 3.0:
        if rng.random() < 0.2:  # an empty, silent stretch
            t += rng.uniform(4.0, 8.0)
            continue
        onset = t
        offset = min(onset + rng.uniform(3.0, 8.0), duration - 0.5)
        active = [o for o in objects if o.offset > onset]
        if len(active) >= 2:
            t = min(o.offset for o in active) + 0.3
            continue
        radius = rng.uniform(9.0, 18.0)
        lo, hi = radius + 2.0, SIZE - radius - 2.0
        obj = MovingObject(
            onset=onset,
            offset=offset,
            colour=int(rng.integers(len(COLOURS))),
            shape=SHAPES[int(rng.integers(2))],
            radius=radius,
            x0=rng.uniform(lo, hi),
            y0=rng.uniform(lo, hi),
        )
        move_onset = onset + rng.uniform(1.0, 2.0)
        if rng.random() < 0.7 and move_onset < offset - 1.0:
            direction = list(DIRECTIONS)[int(rng.integers(4))]
            speed = min(rng.uniform(15.0, 40.0), (hi - lo - 1.0) / (offset - move_onset))
            distance = speed * (offset - move_onset)
            dx, dy = DIRECTIONS[direction]
            # start where the whole path stays inside the frame
            if dx:
                obj.x0 = rng.uniform(lo, hi - distance) if dx > 0 else rng.uniform(lo + distance, hi)
            else:
                obj.y0 = rng.uniform(lo, hi - distance) if dy > 0 else rng.uniform(lo + distance, hi)
            obj.move_onset, obj.direction, obj.speed = move_onset, direction, speed
        objects.append(obj)
        t = onset + rng.uniform(1.0, 4.0)
    return objects


def _sounds(rng, duration, cuts, blocks, objects) -> list[Sound]:
    sounds: list[Sound] = []
    for start, end, congruent in blocks:
        if congruent:
            for o in objects:
                if start <= o.onset < end:
                    sounds.append(Sound("tone", o.onset, o.offset, COLOURS[o.colour][2], o.move_onset, 5.0))
            for c in cuts[1:]:
                if start <= c < end:
                    sounds.append(Sound("noise", float(c), min(float(c) + 0.3, duration)))
            continue
        t = start + rng.uniform(0.0, 1.0)
        while t < end - 0.3:
            if rng.random() < 0.25:  # silence stretch
                t += rng.uniform(3.0, 7.0)
                continue
            kind = ("tone", "noise", "am")[int(rng.choice(3, p=[0.45, 0.25, 0.3]))]
            length = {"tone": rng.uniform(0.5, 3.0), "noise": rng.uniform(0.15, 0.6), "am": rng.uniform(1.0, 3.0)}[kind]
            offset = min(t + length, end)
            if kind == "tone":
                sounds.append(Sound("tone", t, offset, float(rng.uniform(200.0, 1000.0))))
            elif kind == "noise":
                sounds.append(Sound("noise", t, offset))
            else:
                carrier = float(rng.uniform(200.0, 1000.0)) if rng.random() < 0.5 else 0.0
                sounds.append(Sound("am", t, offset, carrier, t, float(rng.uniform(3.0, 8.0))))
            t = offset + rng.uniform(0.3, 2.5)
    sounds.sort(key=lambda s: s.onset)
    return sounds


def _word_duration(word: str) -> float:
    return 0.16 + 0.045 * len(word)


def _narration(rng, duration, cuts, objects) -> tuple[Words, list[float]]:
    """Phrases describing visual events, spoken one after another shortly after each event."""
    phrases: list[tuple[float, list[str]]] = []
    for c in cuts[1:]:
        phrases.append((float(c) + 0.3, ["the", "scene", "changes"]))
    for o in objects:
        name = [COLOURS[o.colour][0], o.shape]
        phrases.append((o.onset + 0.25, ["a", *name, "appears"]))
        if o.direction:
            phrases.append((o.move_onset + 0.2, ["it", "moves", o.direction]))
        phrases.append((o.offset + 0.2, ["the", *name, "vanishes"]))
    phrases.sort(key=lambda p: p[0])
    onsets, offsets, words, f0s = [], [], [], []
    free = 0.0
    for wanted, phrase in phrases:
        start = max(wanted, free)
        length = sum(_word_duration(w) for w in phrase) + 0.06 * (len(phrase) - 1)
        if start - wanted > 2.0 or start + length > duration - 0.1:
            continue  # the narrator skips events it cannot describe in time
        f0 = rng.uniform(110.0, 150.0)
        t = start
        for i, w in enumerate(phrase):
            d = _word_duration(w)
            on, dur = round(t, 4), round(d, 4)
            onsets.append(on)
            offsets.append(round(on + dur, 4))
            words.append(w)
            f0s.append(f0 * (1.0 - 0.15 * i / max(len(phrase), 1)))  # declination
            t += d + 0.06
        free = t + 0.3
    return Words(np.asarray(onsets), np.asarray(offsets), words), f0s


def make_timeline(rng: np.random.Generator, duration: float) -> Timeline:
    """Draw scenes, congruence blocks, objects, sounds and narration for one run."""
    cuts, backgrounds, blocks = _scenes_and_blocks(rng, duration)
    objects = _objects(rng, duration)
    sounds = _sounds(rng, duration, cuts, blocks, objects)
    words, f0 = _narration(rng, duration, cuts, objects)
    return Timeline(duration, cuts, backgrounds, blocks, objects, sounds, words, f0)
