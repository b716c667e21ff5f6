"""The curator workbench: sdcApp's loop in the browser, as a thin shell over the library.

``safemicro workbench survey.dta`` copies the file into a project folder, starts a local
web application on 127.0.0.1 guarded by a random per-launch token and opens it in the
browser. Pages follow the practice guide (Data, Roles, Risk, Methods, Utility, Attack
test, Release, Synthetic); the step history is the plan (``plan.yaml`` at any moment).
:mod:`.project` holds the state, :mod:`.engine` the cached library calls, :mod:`.app`
the web application, :mod:`.server` the launcher.
"""
