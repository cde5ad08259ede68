"""Wire models: inbound messages, outbound CloudEvents and the policy file.

Pure pydantic v2 models with no I/O and no rules; never imports worker/ or tasks/.
"""
