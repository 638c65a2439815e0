package main

import "github.com/urfave/cli/v2"

// subcommand registers c under the top-level command named parent, creating
// the parent the first time, so that command groups can live in separate files.
func subcommand(parent, usage string, c *cli.Command) {
	for _, p := range commands {
		if p.Name == parent {
			p.Subcommands = append(p.Subcommands, c)
			return
		}
	}
	commands = append(commands, &cli.Command{Name: parent, Usage: usage, Subcommands: []*cli.Command{c}})
}
