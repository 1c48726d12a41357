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
# # BPE step by step
#
# Chapter 8 builds a byte-pair-encoding tokenizer. This notebook watches it work: first merge by
# merge on one short sentence, then on the whole of Tiny Shakespeare, where we look at the tokens
# it learns. It takes a few seconds to run, on any machine.

# %%
from collections import Counter

from minigpt.bpe import load_gpt2, merge_pair, split_text
from minigpt.bpe_train import count_pairs, train_bpe, train_fast, train_naive
from minigpt.corpus import load_text

# %% [markdown]
# ## One sentence, merge by merge
#
# Text starts as bytes. Each merge joins the most frequent adjacent pair into a new token. To see
# the text change, we print it after each merge with the tokens separated by `|`. (This is the
# plain algorithm with no splitting into pieces, so tokens may cross spaces.)

# %%
sentence = "the cat sat on the mat, and the rat sat on the cat"
ids = list(sentence.encode("utf-8"))
vocab = {i: bytes([i]) for i in range(256)}


def show(ids: list[int]) -> str:
    return "|".join(vocab[i].decode("utf-8", errors="replace") for i in ids)


print(f"start: {len(ids)} tokens")
print(show(ids))
for new_id in range(256, 266):
    counts = count_pairs([ids])
    best = min(counts, key=lambda pair: (-counts[pair], pair))  # the book's tie rule
    vocab[new_id] = vocab[best[0]] + vocab[best[1]]
    ids = merge_pair(ids, best, new_id)
    print(f"merge {new_id}: {vocab[new_id]!r:10} seen {counts[best]} times -> {len(ids)} tokens")
    print("   ", show(ids))

# %% [markdown]
# The first merge is `at` (in cat, sat, mat and rat), then `the` grows from `e ` and `he `;
# ten merges later `on the ` and `at sat ` are single tokens. Both span a space: without
# pre-splitting, BPE happily learns tokens that glue the end of one word to the next.
#
# ## Pre-splitting with GPT-2's pattern
#
# GPT-2 first cuts the text into pieces (words with their leading space, numbers, punctuation,
# whitespace) and merges only inside pieces:

# %%
print(split_text(sentence, "gpt2"))
merges = train_naive(sentence, 266, pattern="gpt2")
vocab = {i: bytes([i]) for i in range(256)}
for left, right, new in merges:
    vocab[new] = vocab[left] + vocab[right]
print([vocab[new] for _, _, new in merges])

# %% [markdown]
# Now every learned token is a word, a part of a word, or a word with its leading space.
# The fast trainer learns exactly the same merges:

# %%
print(train_fast(sentence, 266, "gpt2") == merges)

# %% [markdown]
# ## Tiny Shakespeare
#
# The same trainer on the whole play collection, about a million characters. With the GPT-2
# pattern this takes about a second. We train on the first 90% (the training split of chapter 9)
# and look at the first and the last merges, and at the longest tokens.

# %%
text = load_text()
cut = int(len(text) * 0.9)
tok = train_bpe(text[:cut], 1024)
learned = [tok.token_text(new) for _, _, new in tok.merges]
print("first 20:", learned[:20])
print("last 20: ", learned[-20:])
print("longest: ", sorted(learned, key=len)[-15:])

# %% [markdown]
# The first merges are frequent letter pairs, often with the space in front of a word (` t`,
# ` a`, ` s`), and by the eleventh merge the commonest word, ` the`; by the end the vocabulary
# holds whole words and the names of the speakers, who appear at the start of every speech.
# Here is a passage from the validation split (not seen in training), cut into tokens:

# %%
passage = text[cut + 1000 : cut + 1300]
print(tok.show(passage))
ids = tok.encode(passage)
print(f"{len(passage)} characters, {len(ids)} tokens, {len(passage) / len(ids):.2f} characters per token")

# %% [markdown]
# How often are the learned tokens used on the validation split? A handful of tokens cover
# much of the text:

# %%
val_ids = tok.encode(text[cut:])
usage = Counter(val_ids)
for token, n in usage.most_common(12):
    print(f"{tok.token_text(token)!r:12} {n:6,}")
print(f"{len(usage)} of {tok.vocab_size} tokens occur in the validation split")

# %% [markdown]
# ## The same passage with GPT-2's vocabulary
#
# GPT-2's 50,257 tokens were learned from web text, not Shakespeare, so it cuts old words and
# names differently, and needs fewer tokens overall. `load_gpt2` is our tokenizer with GPT-2's
# merges (chapter 8 checks that it matches OpenAI's tiktoken token for token).

# %%
gpt2 = load_gpt2()
print(gpt2.show(passage))
print(f"{len(gpt2.encode(passage))} tokens with GPT-2's vocabulary, {len(ids)} with ours")
