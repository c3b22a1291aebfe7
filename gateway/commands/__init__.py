"""The `bitgate` command line: one argparse tree (`cli`) and the commands that are the
gateway's own (serve, demo, keys, subnet simulate); each module is imported when it runs."""
