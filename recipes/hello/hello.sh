#!/bin/sh
# The hello image's program (recipes/hello.toml copies it to /bin/hello).
echo "Hello from factory"
