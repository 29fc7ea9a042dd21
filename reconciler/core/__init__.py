"""The functional core: models, rendering, planning and messages. No I/O here.

Nothing in this package reads the clock, the environment, the filesystem or the network;
every function is a pure function of its arguments.
"""
