"""Pure numpy metrics, verification and identification protocols, cached embedding of files, figures.
Imports the layers below."""
