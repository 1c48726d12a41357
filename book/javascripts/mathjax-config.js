// MathJax 3 settings for pymdownx.arithmatex (generic mode): typeset only the math it marked.
// MathJax itself is served from this site (javascripts/mathjax/), so no network is needed.
// MathJax typesets the page once it has loaded. (The site does not use Material's instant
// navigation; with it, each new page would also need MathJax.typesetPromise() from document$.
// Without it, such a second typeset races the first and breaks autoloaded TeX extensions.)
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    // the math arithmatex marked, and headings with math in the table of contents
    processHtmlClass: "arithmatex|md-nav__link|md-ellipsis",
  },
};
