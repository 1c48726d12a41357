# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your first GPT in ten minutes
#
# This notebook trains a small GPT on Tiny Shakespeare, on the CPU, in about half a minute, then
# plots how its loss fell and asks it to write. It uses the `minigpt` package exactly as the
# chapters build it: the loader and tokenizer of chapter 1, the model of chapter 4, the trainer of
# chapter 5 and the sampler of chapter 6. Run the cells from top to bottom; nothing needs a GPU.
#
# The corpus is read from the file named by the `MINIGPT_DATA` environment variable if it is set,
# and otherwise downloaded once into `~/.cache/minigpt`.

# %%
import dataclasses
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from minigpt.checkpoint import load_run
from minigpt.runs import read_jsonl
from minigpt.sample import sample_text
from minigpt.stages import PRESETS, stage_data
from minigpt.train import train

# %% [markdown]
# ## The settings
#
# We start from the `cpu` preset of chapter 7 and shrink it so that it trains in 30 seconds:
# two layers instead of four, a width of 64 instead of 128, a context of 32 characters. Any
# field of `TrainConfig` can be changed the same way, and the changed copy checks itself.

# %%
cfg = dataclasses.replace(
    PRESETS["cpu"],
    n_layer=2, n_head=4, n_embd=64, block_size=32, batch_size=16,
    max_time=30.0, eval_interval=100, eval_iters=10, warmup_iters=50,
)
print(cfg)

# %% [markdown]
# ## The data
#
# The `char` stage gives us the tokenizer (one token per character) and the two splits.

# %%
data = stage_data(cfg)
print(f"{data.tokenizer.vocab_size} characters in the vocabulary")
print(f"{data.train_ids.numel():,} characters for training, {data.val_ids.numel():,} for validation")
print(data.tokenizer.decode(data.train_ids[:200].tolist()))

# %% [markdown]
# ## Training
#
# `train` prints a line at every evaluation: the estimated train and validation loss, the
# learning rate, and the seconds spent. It stops when the 30 seconds are used up, measures the
# loss on the whole validation split, and leaves its records in a folder.

# %%
out = Path(tempfile.mkdtemp(prefix="first-gpt-"))
result = train(cfg, data, out)
print(result)
print(sorted(p.name for p in out.iterdir()))

# %% [markdown]
# ## The loss curve
#
# Every evaluation is one line of `metrics.jsonl`. An untrained model starts near ln 65 = 4.17
# nats, the loss of a uniform guess among 65 characters.

# %%
rows = [r for r in read_jsonl(out / "metrics.jsonl") if not r.get("final")]
tokens = [r["tokens"] for r in rows]
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(tokens, [r["train_loss"] for r in rows], label="train")
ax.plot(tokens, [r["val_loss"] for r in rows], label="validation")
ax.set_xlabel("tokens seen")
ax.set_ylabel("loss (nats per character)")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# ## What it writes
#
# We load the trained model from its checkpoint and continue a prompt. After 30 seconds it
# has learned the look of a play: names in capitals followed by a colon, short lines, common
# words. Much of it is still not English; the `cpu` preset, with four times the training time
# and a bigger model, gets a good deal further.

# %%
run = load_run(out)
print(sample_text(run.model, run.tokenizer, "ROMEO:", 300, temperature=0.8, seed=1))

# %% [markdown]
# The samples the trainer kept at each evaluation show the same progress over time, from
# random characters to something shaped like verse:

# %%
for record in read_jsonl(out / "samples.jsonl")[::2]:
    print(f"--- step {record['step']} ---")
    print(record["text"][:120])

# %% [markdown]
# ## Temperature
#
# Chapter 6 explains the knobs of sampling. A low temperature makes the model pick its
# favourite characters and repeat itself; a high one makes it adventurous, and soon wrong.

# %%
for temperature in (0.3, 1.0, 1.5):
    text = sample_text(run.model, run.tokenizer, "ROMEO:", 120, temperature=temperature, seed=2)
    print(f"--- temperature {temperature} ---")
    print(text)

# %% [markdown]
# ## Next
#
# Train the real thing from a terminal: `python -m minigpt train --preset cpu` (two minutes),
# then `python -m minigpt sample --run runs/char-cpu --prompt "ROMEO:"`. Chapter 7 explains
# every option, and on a GPU `--preset gpu` trains the classic 10-million-parameter model.
