"""The `tokenizer` command, `bench tokenizer`, and stage 2 end to end (chapters 8 and 9)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken_cache"))

from minigpt.cli import main  # noqa: E402  (the cache folder must be set before tiktoken loads)

needs_gpt2 = pytest.mark.skipif(
    not Path(os.environ["TIKTOKEN_CACHE_DIR"]).is_dir(),
    reason=f"no tiktoken cache at {os.environ['TIKTOKEN_CACHE_DIR']} (GPT-2's files; offline)",
)

TINY = ["n_layer=1", "n_head=2", "n_embd=32", "block_size=32", "batch_size=8", "max_iters=20",
        "eval_interval=10", "eval_iters=2", "warmup_iters=2", "max_time=none", "sample_tokens=20"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60,000 characters of Tiny Shakespeare, as a file."""
    source = Path(os.environ.get("MINIGPT_DATA", SHARED / "tinyshakespeare.txt"))
    if not source.is_file():
        pytest.skip(f"Tiny Shakespeare not found at {source} (set MINIGPT_DATA)")
    path = tmp_path_factory.mktemp("data") / "shakespeare-60k.txt"
    path.write_text(source.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tok_file(corpus: Path) -> Path:
    out = corpus.parent / "tok.bpe"
    assert main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "400",
                 "--special", "<|endoftext|>", "--out", str(out)]) == 0
    return out


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def last_json(out: str) -> list[int]:
    return json.loads(out.strip().splitlines()[-1])


def test_train_writes_a_loadable_file(tok_file: Path) -> None:
    from minigpt.bpe import BPETokenizer

    tok = BPETokenizer.load(tok_file)
    assert len(tok.merges) == 144 and tok.special_tokens == {"<|endoftext|>": 400}


@pytest.mark.parametrize("pattern", ["gpt4", "none"])
def test_train_splits_with_the_pattern_asked_for(
    pattern: str, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from minigpt.bpe import BPETokenizer
    from minigpt.bpe_train import train_bpe

    out = tmp_path / f"{pattern}.bpe"
    status, printed, _ = run(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "300",
                              "--pattern", pattern, "--out", str(out)], capsys)
    assert status == 0 and str(out) in printed
    tok = BPETokenizer.load(out)
    expected = train_bpe(corpus.read_text(encoding="utf-8"), 300, pattern)
    assert tok.pattern == pattern and tok.merges == expected.merges


def test_encode_decode_round_trip(tok_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "To be, or not to be: that is the question. Café 日本 👍🏽\n"
    status, out, _ = run(["tokenizer", "encode", "--tokenizer", str(tok_file), "--text", text],
                         capsys)
    assert status == 0
    ids = last_json(out)
    status, out, _ = run(["tokenizer", "decode", "--tokenizer", str(tok_file), "--ids",
                          json.dumps(ids)], capsys)
    assert status == 0 and out == text + "\n"  # print adds one newline


def test_decode_reads_the_last_line_of_stdin(
    tok_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, out, _ = run(["tokenizer", "encode", "--tokenizer", str(tok_file), "--text", "hark"], capsys)
    monkeypatch.setattr("sys.stdin", io.StringIO("some earlier output\n" + out))
    status, out, _ = run(["tokenizer", "decode", "--tokenizer", str(tok_file)], capsys)
    assert status == 0 and out == "hark\n"


def test_encode_from_a_file_and_show(
    tok_file: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(["tokenizer", "encode", "--tokenizer", str(tok_file), "--input",
                          str(corpus)], capsys)
    assert status == 0 and len(last_json(out)) > 10_000
    status, out, _ = run(["tokenizer", "show", "--tokenizer", str(tok_file), "--text",
                          "First Citizen:\n"], capsys)
    assert status == 0 and out.startswith("[") and "[\\n]" in out and out.endswith(" tokens\n")


def test_show_escapes_control_characters(
    tok_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "Ring\x07 \x1b[2J clear\x9b1m \x7f"  # BEL, ESC, CSI (C1) and DEL: terminal commands
    status, out, _ = run(["tokenizer", "show", "--tokenizer", str(tok_file), "--text", text],
                         capsys)
    assert status == 0 and "\\x07" in out and "\\x1b" in out and "\\x9b" in out, out
    assert not any(c in out for c in "\x07\x1b\x9b\x7f"), out
    status, out, _ = run(["tokenizer", "show", "--tokenizer", str(tok_file), "--text", text,
                          "--color"], capsys)
    assert status == 0 and "\x07" not in out and "\x9b" not in out and "\\x1b" in out, out


def test_special_tokens_need_allow_special(
    tok_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "The end.<|endoftext|>"
    status, _, err = run(["tokenizer", "encode", "--tokenizer", str(tok_file), "--text", text],
                         capsys)
    assert status == 2 and "special token '<|endoftext|>'" in err
    status, out, _ = run(["tokenizer", "encode", "--tokenizer", str(tok_file), "--text", text,
                          "--allow-special"], capsys)
    assert status == 0 and last_json(out)[-1] == 400


@needs_gpt2
def test_gpt2_ours_equals_tiktoken(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = []
    for backend in ("ours", "tiktoken"):
        status, out, _ = run(["tokenizer", "encode", "--tokenizer", "gpt2", "--backend", backend,
                              "--input", str(corpus)], capsys)
        assert status == 0
        results.append(last_json(out))
    assert results[0] == results[1]
    status, out, _ = run(["tokenizer", "encode", "--tokenizer", "gpt2", "--text", "Hello world"],
                         capsys)
    assert last_json(out) == [15496, 995]
    status, out, _ = run(["tokenizer", "decode", "--tokenizer", "gpt2", "--backend", "tiktoken",
                          "--ids", "[15496, 995]"], capsys)
    assert out == "Hello world\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["encode", "--tokenizer", "no-such.bpe", "--text", "x"], "cannot read tokenizer"),
        (["encode", "--tokenizer", "TOK", "--backend", "tiktoken", "--text", "x"],
         "only with --tokenizer gpt2"),
        (["decode", "--tokenizer", "TOK", "--ids", "[1, 2"], "expected a JSON list"),
        (["decode", "--tokenizer", "TOK", "--ids", '["a"]'], "expected a JSON list"),
        (["decode", "--tokenizer", "TOK", "--ids", "[99999]"], "token id 99999"),
        (["encode", "--tokenizer", "TOK", "--input", "no-such.txt"], "cannot read no-such.txt"),
        (["train", "--input", "CORPUS", "--vocab-size", "100", "--out", "x.bpe"], "at least 256"),
    ],
)
def test_mistakes_are_one_line_errors(
    argv: list[str], message: str, tok_file: Path, corpus: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = [str(tok_file) if a == "TOK" else str(corpus) if a == "CORPUS" else a for a in argv]
    status, _, err = run(["tokenizer", *argv], capsys)
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_malformed_file_error_names_the_line(
    tok_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = tok_file.read_text(encoding="utf-8").splitlines()
    lines[260] = "token 258 merge 1 oops"
    broken = tmp_path / "broken.bpe"
    broken.write_text("\n".join(lines), encoding="utf-8")
    status, _, err = run(["tokenizer", "encode", "--tokenizer", str(broken), "--text", "x"], capsys)
    assert status == 2 and f"{broken}:261: 'oops' is not a number" in err


@needs_gpt2
def test_bench_tokenizer_prints_its_rows(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(["bench", "tokenizer", "--data", str(corpus), "--repeat", "1"], capsys)
    assert status == 0
    for row in ("train 512 tokens, gpt2 split", "train 4096 tokens, gpt2 split",
                "encode, tiktoken, gpt2", "encode 200,000 chars, 512 tokens, no split"):
        assert row in out


def test_stage_two_end_to_end(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from minigpt.checkpoint import load_checkpoint
    from minigpt.tokenizer import tokenizer_from_dict

    run_dir = tmp_path / "bpe-run"
    status, out, _ = run(["train", "--stage", "bpe", "--preset", "cpu", "--data", str(corpus),
                          "--out", str(run_dir), "vocab_size=512", *TINY], capsys)
    assert status == 0, out
    state = load_checkpoint(run_dir / "ckpt.pt")
    saved = tokenizer_from_dict(state["tokenizer"])
    assert state["tokenizer"]["kind"] == "bpe" and len(saved.merges) == 256
    assert state["model_args"]["vocab_size"] == 512

    # The tokenizer was learned from the training split only: the validation text is not in it.
    from minigpt.bpe_train import train_bpe

    text = corpus.read_text(encoding="utf-8")
    train_only = train_bpe(text[: int(len(text) * 0.9)], 512)
    assert saved.merges == train_only.merges

    status, out, _ = run(["eval", "--run", str(run_dir)], capsys)
    assert status == 0 and "bits per byte" in out and "val" in out
    status, out, _ = run(["sample", "--run", str(run_dir), "--prompt", "ROMEO:",
                          "--max-new-tokens", "10", "--seed", "1"], capsys)
    assert status == 0 and out.startswith("ROMEO:")
    status, out, _ = run(["tokenizer", "show", "--tokenizer", str(run_dir), "--text", "ROMEO:"],
                         capsys)
    assert status == 0 and out.startswith("[")
    status, out, _ = run(["train", "--resume", "--out", str(run_dir), "max_iters=30"], capsys)
    assert status == 0
