"""The tooling behind tangle.py: the book's code blocks become the minigpt package.

Read it in this order; the first three modules are the whole of what tangling does.

    markdown   one chapter: which code blocks are tangled, and their attributes
    book       all chapters: chunks, continuations and references, checked together
    expand     the file roots expanded into files in memory, with markers and origins

The rest puts the result on disk and serves the commands around it:

    nav        the chapters in book order, from the nav of mkdocs.yml (no PyYAML)
    sourcemap  minigpt/sourcemap.json: each file's hash and chapter line of every line
    package    writing minigpt/: what changed, the guard against losing hand edits
    stitch     carrying edits made in minigpt/ back into the chapters
    where      `where FILE:LINE` and `list`

Standard library only: it runs before anything is installed. It is not part of the installed
package; minigpt/_literate.py reads the source map and never imports this.
"""
