"""Reports: figures (``plots``) and the self-contained HTML page (``html``)."""
