"""The on-disk formats, one module each: its reader, writer, validation and overwrite rule together
(docs/architecture.md). Formats import only the base modules below them (errors, data.files,
data.model ...), never the methods that produce or consume the files."""
