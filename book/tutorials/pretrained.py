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
# # A trained model first
#
# Before you train anything, run a model that is already trained. Two ship inside the `minigpt`
# package (chapter 14): a character-level Shakespeare model and a model of Python's standard
# library. This notebook loads the first, asks it to write with a few settings of chapter 6's
# knobs, and looks at what it predicts next. Nothing is downloaded and nothing needs a GPU.

# %%
import torch

from minigpt.pretrained import read_card, shipped_model, shipped_names
from minigpt.sample import next_token_probs, sample_text

# %% [markdown]
# ## What ships
#
# Each model has a card: what it is, the command that trained it, and what it measured on its
# validation split.

# %%
for name in shipped_names():
    card = read_card(name)
    print(f"{name}: {card['description']}")
    print(f"  validation loss {card['val_loss']:.4f}, {card['val_bpb']:.3f} bits per byte")
    print(f"  made by: {card['command']}\n")

# %% [markdown]
# ## Writing
#
# The same prompt and seed with three temperatures: 0 always takes the likeliest character
# (and goes round in circles), 0.8 is the command line's default, 1.2 is wilder.

# %%
run = shipped_model("shakespeare-char")
for temperature in (0, 0.8, 1.2):
    print(f"--- temperature {temperature} ---")
    print(sample_text(run.model, run.tokenizer, "ROMEO:", 200, temperature=temperature, seed=1))

# %% [markdown]
# ## What it expects next
#
# The model's distribution over the next character after a prompt: its five favourites.

# %%
prompt = "ROMEO:\nI will not s"
with torch.no_grad():
    logits = run.model(torch.tensor([run.tokenizer.encode(prompt)]))[0][0, -1]
probs = next_token_probs(logits)
for p, i in zip(*probs.topk(5), strict=True):
    print(f"{run.tokenizer.decode([int(i)])!r}: {p.item():.2f}")

# %% [markdown]
# ## Where next
#
# - `python -m minigpt sample --pretrained shakespeare-char --prompt "ROMEO:"` does the same
#   from the command line; `python -m minigpt pretrained list` prints the cards.
# - [Your first GPT in ten minutes](first-gpt.py) trains a small model of your own.
# - `python -m minigpt train --init-from pretrained:shakespeare-char --out runs/more ...`
#   continues from this model (chapter 14).
