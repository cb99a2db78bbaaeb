package main

import (
	"context"
	"fmt"

	"github.com/keel-go/keel/admin"
)

const clusterUsage = `Usage: keel cluster [--apis] [--json] [flags]

Describes the cluster: its id, the controller and every broker (id,
address, rack), and, asked of each broker, the API versions it offers and
the one keel uses (--apis prints them all; otherwise a count).

Examples:
  keel cluster
  keel cluster --apis
  keel cluster --json | jq '.brokers[].apis[] | select(.name == "Produce")'
`

func init() {
	register(command{name: "cluster", order: 35, summary: "describe the cluster: id, controller, brokers and their API versions", run: runCluster})
}

type clusterJSON struct {
	ClusterID  string              `json:"cluster_id"`
	Controller int32               `json:"controller"`
	Brokers    []clusterBrokerJSON `json:"brokers"`
}

type clusterBrokerJSON struct {
	ID    int32     `json:"id"`
	Host  string    `json:"host"`
	Port  int32     `json:"port"`
	Rack  string    `json:"rack,omitempty"`
	Error string    `json:"error,omitempty"`
	APIs  []apiJSON `json:"apis"`
}

type apiJSON struct {
	Key  int16  `json:"key"`
	Name string `json:"name"`
	Min  int16  `json:"min_version"`
	Max  int16  `json:"max_version"`
	Used int16  `json:"keel_version"` // -1: keel does not use it with this broker
}

func runCluster(ctx context.Context, args []string, io stdio) int {
	const cmd = "cluster"
	fs := newFlagSet(cmd, clusterUsage, io)
	f := addAdminFlags(fs, io)
	apis := fs.Bool("apis", false, "list every broker's API versions")
	asJSON := jsonFlag(fs)
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		d, err := a.DescribeCluster(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			out := clusterJSON{ClusterID: d.ClusterID, Controller: d.Controller, Brokers: []clusterBrokerJSON{}}
			for _, b := range d.Brokers {
				bj := clusterBrokerJSON{ID: b.ID, Host: b.Host, Port: b.Port, Rack: b.Rack, APIs: []apiJSON{}}
				if b.Err != nil {
					bj.Error = b.Err.Error()
				}
				for _, v := range b.APIs {
					bj.APIs = append(bj.APIs, apiJSON{v.Key, v.Name, v.Min, v.Max, v.Used})
				}
				out.Brokers = append(out.Brokers, bj)
			}
			return printJSON(io, out)
		}
		fmt.Fprintf(io.out, "Cluster:     %s\n", orText(d.ClusterID))
		fmt.Fprintf(io.out, "Controller:  %s\n", brokerName(d.Controller))
		fmt.Fprintf(io.out, "Brokers:     %d\n\n", len(d.Brokers))
		t := newTextTable("BROKER", "ADDRESS", "RACK", "APIS", "NOTE").alignRight(0, 3)
		for _, b := range d.Brokers {
			note := ""
			if b.ID == d.Controller {
				note = "controller"
			}
			if b.Err != nil {
				note = "API versions unknown: " + b.Err.Error()
			}
			t.add(b.ID, fmt.Sprintf("%s:%d", b.Host, b.Port), orText(b.Rack), len(b.APIs), note)
		}
		t.print(io.out)
		if !*apis {
			return nil
		}
		for _, b := range d.Brokers {
			fmt.Fprintf(io.out, "\nBroker %d API versions:\n", b.ID)
			at := newTextTable("KEY", "API", "MIN", "MAX", "KEEL-USES").alignRight(0, 2, 3, 4)
			for _, v := range b.APIs {
				used := "-"
				if v.Used >= 0 {
					used = fmt.Sprintf("v%d", v.Used)
				}
				at.add(v.Key, v.Name, v.Min, v.Max, used)
			}
			at.print(io.out)
		}
		return nil
	})
}

func brokerName(id int32) string {
	if id < 0 {
		return "none"
	}
	return fmt.Sprintf("broker %d", id)
}
