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


def _scenes(rng: np.random.Generator, duration: float) -> tuple[np.ndarray, np.ndarray]:
    cuts = [0.0]
    while True:
        t = cuts[-1] + rng.uniform(6.0, 20.0)
        if t > duration - 3.0:
            break
        cuts.append(t)
    backgrounds = []
    value = rng.uniform(0.15, 0.9)
    for _ in cuts:
        hue, sat = rng.uniform(0, 1), rng.uniform(0.1, 0.45)
        new = rng.uniform(0.12, 0.9)
        while abs(new - value) < 0.2:  # each cut changes the luminance visibly
            new = rng.uniform(0.12, 0.9)
        value = new
        backgrounds.append([round(255 * c) for c in colorsys.hsv_to_rgb(hue, sat, value)])
    return np.asarray(cuts), np.asarray(backgrounds, dtype=np.uint8)


def _blocks(rng: np.random.Generator, duration: float) -> list[tuple[float, float, bool]]:
    blocks, t, congruent = [], 0.0, bool(rng.random() < 0.5)
    while t < duration:
        end = min(t + rng.uniform(20.0, 40.0), duration)
        if duration - end < 10.0:  # no stub block at the end
            end = duration
        blocks.append((t, end, congruent))
        t, congruent = end, not congruent
    return blocks


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
    cuts, backgrounds = _scenes(rng, duration)
    blocks = _blocks(rng, duration)
    objects = _objects(rng, duration)
    sounds = _sounds(rng, duration, cuts, blocks, objects)
    words, f0 = _narration(rng, duration, cuts, objects)
    return Timeline(duration, cuts, backgrounds, blocks, objects, sounds, words, f0)
