"""The search layer: planning work units, the Ray executor loop and its policies, the driver.

The one module that submits work to Ray is ``loop``; policies (``plain``, ``halving``,
``bracket``) and work units (``unit``) are Ray-free, so they run and are tested without it.
"""
