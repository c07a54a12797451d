"""Results: the files of a results folder and their safe writing (:mod:`~jtricks.results.files`), run fingerprints,
statistics over seeds, summaries, Markdown and plots, TensorBoard files."""
