"""Gradio tabs: each module builds one tab's components and wires them to avdemo functions."""
