"""Data the library reads at run time, shipped inside the package (``importlib.resources``) so that an installed
servegate builds the same prompts as a checkout: ``corpus.txt``, the text every synthetic prompt is cut from."""
