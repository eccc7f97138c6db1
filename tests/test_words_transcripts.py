"""Per-TR transcript TSVs (Algonauts 2025 ``stimuli/transcripts``) read as timed words.

The miniature files follow the real layout: header ``text_per_tr  words_per_tr  onsets_per_tr
durations_per_tr`` and no index column (the challenge tutorial reads friends_s01e01a.tsv with
``pd.read_csv(sep='\\t')`` into 591 rows x 4 columns), one row per 1.49 s TR, empty TRs as an empty
text cell and ``[]`` lists, list cells written by pandas' ``to_csv`` (so a word with a double
quote is CSV-quoted), onsets absolute in seconds, each word in the TR where it ends. The timing
numbers of rows 12-15 are those the tutorial prints for that file; the words are made up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmneuro.datasets.base import StimulusRun
from mmneuro.errors import InputError
from mmneuro.stimuli.words import read_transcript_tsv, read_words

TR = 1.49
HEADER = "text_per_tr\twords_per_tr\tonsets_per_tr\tdurations_per_tr\n"
EMPTY_ROW = "\t[]\t[]\t[]\n"
ROWS = [  # (row index, text, words, onsets, durations)
    (12, "It's ", ["It's"], [18.97], [0.176]),
    (13, "a small test.", ["a", "small", "test."], [19.178, 19.476, 19.668], [0.244, 0.17, 0.572]),
    (14, "one two three four five", ["one", "two", "three", "four", "five"],
     [20.85, 21.316, 21.572, 21.748, 21.908], [0.412, 0.218, 0.154, 0.138, 0.234]),
    (15, 'six. say "hi"', ["six.", 'say', '"hi"'], [22.196, 22.9, 23.316], [0.554, 0.362, 0.458]),
]
# the same rows exactly as pandas' to_csv(sep="\t", index=False) writes them
LITERAL = (
    HEADER + EMPTY_ROW * 12
    + "It's \t\"[\"\"It's\"\"]\"\t[18.97]\t[0.176]\n"
    + "a small test.\t['a', 'small', 'test.']\t[19.178, 19.476, 19.668]\t[0.244, 0.17, 0.572]\n"
    + "one two three four five\t['one', 'two', 'three', 'four', 'five']\t[20.85, 21.316, 21.572, 21.748, 21.908]"
      "\t[0.412, 0.218, 0.154, 0.138, 0.234]\n"
    + "\"six. say \"\"hi\"\"\"\t\"['six.', 'say', '\"\"hi\"\"']\"\t[22.196, 22.9, 23.316]\t[0.554, 0.362, 0.458]\n"
    + EMPTY_ROW * 2
)


def expected():
    words = [w for r in ROWS for w in r[2]]
    onsets = np.array([o for r in ROWS for o in r[3]])
    offsets = np.array([o + d for r in ROWS for o, d in zip(r[3], r[4])])
    return words, onsets, offsets


def write(tmp_path: Path, text: str, name: str = "friends_s01e01a.tsv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_transcript_read_through_read_words(tmp_path):
    p = write(tmp_path, LITERAL)
    words, onsets, offsets = expected()
    for w in (read_words(p), read_transcript_tsv(p, tr=TR)):
        assert w.words == words
        np.testing.assert_allclose(w.onsets, onsets)
        np.testing.assert_allclose(w.offsets, offsets)
    run = StimulusRun(name="s01e01a", tr_times=(np.arange(18) + 0.5) * TR, words=p)
    assert len(read_words(run.words)) == 12


def test_literal_layout_is_what_pandas_writes(tmp_path):
    pd = pytest.importorskip("pandas")
    rows = {i: (t, w, o, d) for i, t, w, o, d in ROWS}
    data = [rows.get(i, (np.nan, [], [], [])) for i in range(18)]
    df = pd.DataFrame(data, columns=["text_per_tr", "words_per_tr", "onsets_per_tr", "durations_per_tr"])
    p = tmp_path / "pandas.tsv"
    df.to_csv(p, sep="\t", index=False)
    assert p.read_text() == LITERAL
    back = pd.read_csv(p, sep="\t")
    assert back.shape == (18, 4) and back["text_per_tr"].isna().sum() == 14


def test_relative_onsets_fail_the_tr_window_check(tmp_path):
    relative = LITERAL.replace("[18.97]", f"[{18.97 - 12 * TR:.3f}]")
    p = write(tmp_path, relative)
    read_words(p)  # the layout alone cannot tell; the TR check can
    with pytest.raises(InputError, match=r"line 14, column 'onsets_per_tr'.*outside this row's TR window"):
        read_transcript_tsv(p, tr=TR)


def test_word_ending_in_the_next_tr_belongs_there(tmp_path):
    # a word starting in TR 1 and ending in TR 2 sits in row 2 with its true (earlier) onset
    text = HEADER + EMPTY_ROW + EMPTY_ROW + "long\t['long']\t[2.9]\t[0.5]\n"
    w = read_transcript_tsv(write(tmp_path, text), tr=TR)
    assert w.words == ["long"] and w.onsets[0] == 2.9 and w.offsets[0] == pytest.approx(3.4)


@pytest.mark.parametrize("column,cell,needle", [
    ("words_per_tr", "['a', 'b'", "not a Python list literal"),
    ("words_per_tr", "__import__('os').system('touch pwned')", "not a Python list literal"),
    ("words_per_tr", "{'a': 1}", "is a dict, not a list"),
    ("words_per_tr", "['a', 2]", "item 1"),
    ("onsets_per_tr", "[1.0, 'x']", "not a number"),
    ("onsets_per_tr", "[1.0, True]", "not a number"),
    ("onsets_per_tr", "[1e999, 1.2]", "not finite"),
    ("durations_per_tr", "[0.1, -0.2]", "negative"),
    ("durations_per_tr", "[0.1]", "same length"),
])
def test_malformed_cells_name_file_line_and_column(tmp_path, monkeypatch, column, cell, needle):
    monkeypatch.chdir(tmp_path)
    cells = {"text_per_tr": "a b", "words_per_tr": "['a', 'b']", "onsets_per_tr": "[1.0, 1.2]",
             "durations_per_tr": "[0.1, 0.1]"}
    cells[column] = cell
    row = "\t".join(cells[c] for c in ("text_per_tr", "words_per_tr", "onsets_per_tr", "durations_per_tr"))
    p = write(tmp_path, HEADER + EMPTY_ROW + row + "\n")
    with pytest.raises(InputError) as err:
        read_words(p)
    msg = str(err.value)
    assert str(p) in msg and "line 3" in msg and needle in msg
    if needle != "same length":
        assert f"column {column!r}" in msg
    assert not (tmp_path / "pwned").exists()


def test_transcript_header_and_shape_errors(tmp_path):
    p = write(tmp_path, "text_per_tr\twords_per_tr\tonsets_per_tr\n\t[]\t[]\n")
    with pytest.raises(InputError, match=r"missing column\(s\) \['durations_per_tr'\]"):
        read_words(p)
    p = write(tmp_path, HEADER + "\t[]\t[]\n")
    with pytest.raises(InputError, match=r"line 2: 3 tab-separated cells but the header has 4"):
        read_words(p)
    with pytest.raises(InputError, match="not found"):
        read_transcript_tsv(tmp_path / "nope.tsv")


def test_plain_word_tsv_still_read_as_before(tmp_path):
    p = write(tmp_path, "onset\tduration\tword\n0.5\t0.25\thello\n1.0\t0.5\tsp\n", name="words.tsv")
    w = read_words(p)
    assert w.words == ["hello"] and w.offsets[0] == 0.75
