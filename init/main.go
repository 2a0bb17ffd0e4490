package main

import "os"

func main() { os.Exit(run(os.Args, os.Getpid(), os.Stderr)) }
