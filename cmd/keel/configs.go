package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/keel-go/keel/admin"
)

const configsUsage = `Usage: keel configs <describe|alter> --entity topic|broker --name NAME [flags]

Shows and changes the configs of a topic or a broker, as kafka-configs.sh
does: describe lists every config with its value, where it comes from
(SOURCE) and whether it is the default; alter sets (--set key=value) and
removes (--delete key: back to the default) configs, leaving the others
as they are (IncrementalAlterConfigs).

A broker is named by its id; --name "" (or --entity-default) is the
cluster-wide default every broker inherits.

Subcommands:
  describe   list the configs (--json for scripts; --only-set hides defaults)
  alter      --set key=value ... --delete key ... [--validate-only]

Examples:
  keel configs describe --entity topic --name orders
  keel configs alter --entity topic --name orders --set retention.ms=86400000 --delete cleanup.policy
  keel configs describe --entity broker --name 0 --only-set
  keel configs alter --entity broker --entity-default --set log.retention.ms=604800000
`

func init() {
	register(command{name: "configs", subs: []string{"describe", "alter"}, order: 55, summary: "describe and alter topic and broker configs (like kafka-configs.sh)", run: runConfigs})
}

func runConfigs(ctx context.Context, args []string, io stdio) int {
	return runSubcommand(ctx, "configs", configsUsage, map[string]func(context.Context, []string, stdio) int{
		"describe": runConfigsDescribe,
		"alter":    runConfigsAlter,
	}, args, io)
}

// entityFlags are --entity, --name and --entity-default.
type entityFlags struct {
	entity, name *string
	def          *bool
}

func addEntityFlags(fs interface {
	String(string, string, string) *string
	Bool(string, bool, string) *bool
}) entityFlags {
	return entityFlags{
		entity: fs.String("entity", "", "what to configure: `topic` or broker (required)"),
		name:   fs.String("name", "", "the topic's `name`, or the broker's id"),
		def:    fs.Bool("entity-default", false, "with --entity broker: the cluster-wide default"),
	}
}

// resource checks the flags; msg is a usage error when not "".
func (e entityFlags) resource() (admin.ConfigResource, string) {
	switch strings.ToLower(*e.entity) {
	case "topic", "topics":
		if *e.def {
			return admin.ConfigResource{}, "--entity-default goes with --entity broker; topics have no cluster-wide default here (set it on the brokers)"
		}
		if *e.name == "" {
			return admin.ConfigResource{}, "which topic? pass --name TOPIC"
		}
		return admin.ConfigResource{Type: admin.TopicConfigs, Name: *e.name}, ""
	case "broker", "brokers":
		if *e.def && *e.name != "" {
			return admin.ConfigResource{}, "--name and --entity-default: give one"
		}
		if !*e.def && *e.name == "" {
			return admin.ConfigResource{}, "which broker? pass --name ID, or --entity-default for the cluster-wide default"
		}
		return admin.ConfigResource{Type: admin.BrokerConfigs, Name: *e.name}, ""
	case "":
		return admin.ConfigResource{}, "what to configure? pass --entity topic or --entity broker"
	}
	return admin.ConfigResource{}, fmt.Sprintf("--entity %s: use topic or broker", *e.entity)
}

func runConfigsDescribe(ctx context.Context, args []string, io stdio) int {
	const cmd = "configs describe"
	fs := newFlagSet(cmd, configsUsage, io)
	f := addAdminFlags(fs, io)
	ent := addEntityFlags(fs)
	onlySet := fs.Bool("only-set", false, "hide configs at their default")
	asJSON := jsonFlag(fs)
	aliases(fs, "entity", "entity-type", "name", "entity-name")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	res, msg := ent.resource()
	if msg != "" {
		return usageError(io, cmd, "%s", msg)
	}
	if res.Type == admin.TopicConfigs {
		if code, bad := badTopicNames(io, cmd, res.Name); bad {
			return code
		}
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		entries, err := a.DescribeConfigs(ctx, res)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(io, configsJSON(entries, *onlySet))
		}
		t := newTextTable("NAME", "VALUE", "SOURCE", "DEFAULT", "READ-ONLY")
		if *onlySet && len(configsJSON(entries, true)) == 0 {
			fmt.Fprintf(io.out, "%s sets no config of its own: every value is a default\n", res)
			return nil
		}
		for _, c := range entries {
			if *onlySet && c.Default {
				continue
			}
			v := c.Value
			switch {
			case c.Sensitive:
				v = "(sensitive)"
			case v == "":
				v = `""`
			}
			t.add(c.Name, v, orText(c.Source), yesNo(c.Default), yesNo(c.ReadOnly))
		}
		t.print(io.out)
		return nil
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func runConfigsAlter(ctx context.Context, args []string, io stdio) int {
	const cmd = "configs alter"
	fs := newFlagSet(cmd, configsUsage, io)
	f := addAdminFlags(fs, io)
	ent := addEntityFlags(fs)
	var ops []admin.ConfigOp
	fs.Func("set", "set a config: `key=value` (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("want key=value, e.g. retention.ms=86400000")
		}
		ops = append(ops, admin.ConfigOp{Name: strings.TrimSpace(k), Value: v})
		return nil
	})
	fs.Func("delete", "remove a config's own value, back to the default: `key` (repeatable)", func(s string) error {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("want a config name")
		}
		ops = append(ops, admin.ConfigOp{Name: strings.TrimSpace(s), Delete: true})
		return nil
	})
	validateOnly := fs.Bool("validate-only", false, "only check the change; change nothing")
	aliases(fs, "entity", "entity-type", "name", "entity-name", "set", "add-config", "delete", "delete-config")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	res, msg := ent.resource()
	if msg != "" {
		return usageError(io, cmd, "%s", msg)
	}
	if res.Type == admin.TopicConfigs {
		if code, bad := badTopicNames(io, cmd, res.Name); bad {
			return code
		}
	}
	if len(ops) == 0 {
		return usageError(io, cmd, "what to change? pass --set key=value or --delete key")
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		if err := a.AlterConfigs(ctx, res, *validateOnly, ops...); err != nil {
			return err
		}
		verb := "altered"
		if *validateOnly {
			verb = "validated (nothing was changed)"
		}
		for _, op := range ops {
			if op.Delete {
				fmt.Fprintf(io.out, "%s: %s deleted (back to its default)\n", verb, op.Name)
			} else {
				fmt.Fprintf(io.out, "%s: %s=%s\n", verb, op.Name, op.Value)
			}
		}
		return nil
	})
}
