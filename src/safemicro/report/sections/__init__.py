"""The sections of the release pages (internal report, external report, approval form), one
concept per module; :mod:`safemicro.report.release_report` assembles and renders them."""
