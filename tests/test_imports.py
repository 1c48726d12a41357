"""The package's import graph, read from the source: no cycles, no upward or hidden imports.

Every module of minigpt/ sits in a layer; a module may import only modules of lower layers.
The layers are listed here, so adding a module means deciding where it belongs. Handlers that
cli.py names as "minigpt.module:function" strings (imported on demand by minigpt.lazy) count as
imports too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minigpt"
LAYERS = [
    # depend on nothing of ours
    {"__init__", "_literate", "errors", "lazy", "files", "kv_cache", "sparse", "console",
     "random_tokens", "variants"},
    # attention, which may be handed a KV cache
    {"attention", "hf"},
    # the pieces: a corpus, a tokenizer, characters as numbers, a model, documents, shards
    {"corpus", "bpe", "data", "model", "sources", "shards", "distributed"},
    # characters with control tokens, which the tokenizers' registry knows (chapter 15)
    {"control"},
    # what builds on one piece
    {"bpe_train", "bigram", "tokenizer", "optim", "mfu"},
    # sampling, checkpoints, and the tokenizer benchmark
    {"sample", "checkpoint", "tokenizer_bench"},
    # what reads or writes checkpoints or shards, drawing images and writing genres (chapter 15)
    {"runs", "tokenizer_cli", "prepare", "digits", "genres"},
    # training (and the prepare benchmark), then what chooses what to train
    {"train", "prepare_bench"},
    {"subword", "bench", "shard_data", "code_check", "digits_data",
     "genres_data"},
    {"stages", "compress", "digits_bench", "genres_bench", "hf_bench", "ladder"},
    # what a command starts from: a run, GPT-2's weights, a shipped model (chapter 14)
    {"pretrained"},
    # the command line
    {"commands", "generate_bench", "figures"},
    {"sweep", "conditional"},
    {"cli"},
    {"__main__"},
]
LAYER = {module: level for level, modules in enumerate(LAYERS) for module in modules}
HANDLER_RE = re.compile(r"^minigpt\.(\w+):\w+$")


def module_files() -> dict[str, Path]:
    return {path.stem: path for path in sorted(PACKAGE.glob("*.py"))}


def imports(path: Path) -> tuple[set[str], list[str]]:
    """(modules of ours imported at the top level or named as handlers, function-local ones)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top: set[str] = set()
    local: list[str] = []
    for node in ast.walk(tree):
        names = ours(node)
        if not names:
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if match := HANDLER_RE.match(node.value):
                    top.add(match[1])
            continue
        if node in tree.body:
            top |= names
        else:
            local.append(f"{path.name}:{node.lineno}: {', '.join(sorted(names))}")
    return top, local


def ours(node: ast.AST) -> set[str]:
    if isinstance(node, ast.ImportFrom) and node.module:
        if node.module == "minigpt":
            return {alias.name for alias in node.names}
        if node.module.startswith("minigpt."):
            return {node.module.split(".")[1]}
    if isinstance(node, ast.Import):
        return {a.name.split(".")[1] for a in node.names if a.name.startswith("minigpt.")}
    return set()


def graph() -> dict[str, set[str]]:
    return {name: imports(path)[0] for name, path in module_files().items()}


def test_every_module_has_a_layer() -> None:
    assert set(module_files()) == set(LAYER)


def test_no_function_imports_a_module_of_ours() -> None:
    local = [line for path in module_files().values() for line in imports(path)[1]]
    assert local == []


def test_imports_point_to_lower_layers_only() -> None:
    upward = [f"{a} (layer {LAYER[a]}) imports {b} (layer {LAYER[b]})"
              for a, targets in graph().items() for b in sorted(targets)
              if LAYER[b] >= LAYER[a]]
    assert upward == []


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(module):], module]))
        if module in done:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_the_checker_sees_a_cycle_and_a_local_import(tmp_path: Path) -> None:
    """The checks above can fail: a made-up module with both faults is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from minigpt.cli import main\n\ndef f():\n    import minigpt.train\n")
    top, local = imports(bad)
    assert top == {"cli"} and local == ["bad.py:4: train"]
    handler = tmp_path / "handler.py"
    handler.write_text('SPEC = "minigpt.commands:run_train"\n')
    assert imports(handler)[0] == {"commands"}
