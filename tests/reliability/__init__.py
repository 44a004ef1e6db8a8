"""Reliability and security tests: server faults, model garbage, bad inputs, interrupts, concurrency,
secrets and untrusted files. Fast by design: scripted LMs and ``program.testing.fakeserver.FakeServer``."""
