package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/keel-go/keel/admin"
)

const aclsUsage = `Usage: keel acls <list|create|delete> [flags]

Lists, creates and deletes access-control lists, as kafka-acls.sh does.
An ACL says that a principal may (--permission allow, the default) or may
not (deny) perform an operation on resources, from a host.

Flags (Apache Kafka's names):
  --principal User:NAME      who (User:* for everyone)
  --host HOST                from where (default * : any host)
  --operation OP             ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
                             DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ...
  --permission allow|deny
  --topic T | --group G | --cluster | --transactional-id ID
                             the resource (--resource-type and --resource-name
                             name any type)
  --resource-pattern-type literal|prefixed
                             prefixed: the name is a prefix (list and delete
                             also take match and any)

Subcommands:
  list       the ACLs matching the flags given (none: every ACL); --json
  create     one ACL; --principal, --operation and a resource are required
  delete     every ACL matching the flags; a principal or a resource is
             required, so a bare delete cannot remove them all

Examples:
  keel acls create --principal User:alice --operation write --topic orders
  keel acls create --principal User:bob --operation read --topic orders. --resource-pattern-type prefixed
  keel acls list --topic orders
  keel acls delete --principal User:alice --topic orders
`

func init() {
	register(command{name: "acls", subs: []string{"list", "create", "delete"}, order: 57, summary: "list, create and delete ACLs (like kafka-acls.sh)", run: runACLs})
}

func runACLs(ctx context.Context, args []string, io stdio) int {
	return runSubcommand(ctx, "acls", aclsUsage, map[string]func(context.Context, []string, stdio) int{
		"list":   func(ctx context.Context, a []string, io stdio) int { return runACLsCmd(ctx, "list", a, io) },
		"create": func(ctx context.Context, a []string, io stdio) int { return runACLsCmd(ctx, "create", a, io) },
		"delete": func(ctx context.Context, a []string, io stdio) int { return runACLsCmd(ctx, "delete", a, io) },
	}, args, io)
}

func runACLsCmd(ctx context.Context, sub string, args []string, io stdio) int {
	cmd := "acls " + sub
	fs := newFlagSet(cmd, aclsUsage, io)
	f := addAdminFlags(fs, io)
	var x admin.ACL
	fs.StringVar(&x.Principal, "principal", "", "`User:NAME` the ACL is for")
	fs.StringVar(&x.Host, "host", "", "`host` the principal connects from (* for any)")
	fs.StringVar(&x.Operation, "operation", "", "`operation`: ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, ...")
	fs.StringVar(&x.Permission, "permission", "", "allow or deny (create: allow when not given)")
	topic := fs.String("topic", "", "the resource is this `topic`")
	group := fs.String("group", "", "the resource is this consumer `group`")
	txn := fs.String("transactional-id", "", "the resource is this transactional `id`")
	cluster := fs.Bool("cluster", false, "the resource is the cluster")
	fs.StringVar(&x.ResourceType, "resource-type", "", "resource `type`: TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, ...")
	fs.StringVar(&x.ResourceName, "resource-name", "", "resource `name`")
	fs.StringVar(&x.PatternType, "resource-pattern-type", "", "literal or prefixed (list, delete: also match, any)")
	asJSON := jsonFlag(fs)
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	n := 0
	for _, r := range []struct {
		set       bool
		typ, name string
	}{{*topic != "", "TOPIC", *topic}, {*group != "", "GROUP", *group}, {*txn != "", "TRANSACTIONAL_ID", *txn}, {*cluster, "CLUSTER", "kafka-cluster"}} {
		if r.set {
			n++
			x.ResourceType, x.ResourceName = r.typ, r.name
		}
	}
	if n > 1 {
		return usageError(io, cmd, "name one resource: --topic, --group, --transactional-id or --cluster")
	}
	if n == 1 && (flagGiven(fs, "resource-type") || flagGiven(fs, "resource-name")) {
		return usageError(io, cmd, "--resource-type and --resource-name name a resource themselves; not with --topic, --group, --transactional-id or --cluster")
	}
	switch sub {
	case "create":
		if x.Permission == "" {
			x.Permission = "ALLOW"
		}
		switch {
		case x.Principal == "":
			return usageError(io, cmd, "who? pass --principal User:NAME")
		case x.Operation == "":
			return usageError(io, cmd, "which operation? pass --operation (read, write, describe, all, ...)")
		case x.ResourceType == "":
			return usageError(io, cmd, "on what? pass --topic T, --group G, --transactional-id ID or --cluster")
		}
	case "delete":
		if x.Principal == "" && x.ResourceName == "" {
			return usageError(io, cmd, "delete what? name --principal or a resource (--topic, --group, ...); a bare delete would remove every ACL")
		}
	}
	// A literal topic name must be a legal one ("*" means every topic; a
	// prefix may be any start of one).
	if x.ResourceType == "TOPIC" && x.ResourceName != "*" && !strings.EqualFold(x.PatternType, "prefixed") {
		if code, bad := badTopicNames(io, cmd, x.ResourceName); bad {
			return code
		}
	}
	if err := x.Validate(sub != "create"); err != nil {
		return usageError(io, cmd, "%s", strings.TrimPrefix(err.Error(), "admin: "))
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		switch sub {
		case "create":
			if err := a.CreateACLs(ctx, x); err != nil {
				return err
			}
			if x.Host == "" {
				x.Host = "*"
			}
			if x.PatternType == "" {
				x.PatternType = "LITERAL"
			}
			fmt.Fprintf(io.out, "created ACL: %s %s %s on %s %s (%s) from host %s\n",
				x.Principal, strings.ToUpper(x.Permission), strings.ToUpper(x.Operation), strings.ToUpper(x.ResourceType), x.ResourceName, strings.ToUpper(x.PatternType), x.Host)
			return nil
		case "delete":
			deleted, err := a.DeleteACLs(ctx, x)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(io, aclsJSON(deleted))
			}
			fmt.Fprintf(io.out, "deleted %d ACL(s)\n", len(deleted))
			printACLs(io, deleted)
			return nil
		}
		list, err := a.ListACLs(ctx, x)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(io, aclsJSON(list))
		}
		if len(list) == 0 {
			fmt.Fprintln(io.out, "no ACLs match")
			return nil
		}
		printACLs(io, list)
		return nil
	})
}

func printACLs(io stdio, acls []admin.ACL) {
	if len(acls) == 0 {
		return
	}
	t := newTextTable("PRINCIPAL", "HOST", "OPERATION", "PERMISSION", "RESOURCE-TYPE", "RESOURCE-NAME", "PATTERN")
	for _, x := range acls {
		t.add(x.Principal, x.Host, x.Operation, x.Permission, x.ResourceType, x.ResourceName, x.PatternType)
	}
	t.print(io.out)
}

type aclJSON struct {
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  string `json:"pattern_type"`
}

func aclsJSON(acls []admin.ACL) []aclJSON {
	out := []aclJSON{}
	for _, x := range acls {
		out = append(out, aclJSON(x))
	}
	return out
}
