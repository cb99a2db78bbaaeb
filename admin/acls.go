package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// ACL is one access-control entry: Principal may (Permission ALLOW) or
// may not (DENY) perform Operation on the resources ResourceType
// ResourceName matches, from Host. Values are Kafka's names, in any case:
//
//   - Principal: "User:alice" ("User:*" for everyone).
//   - Host: an IP address, or "*" for any host.
//   - Operation: ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
//     CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE,
//     CREATE_TOKENS, DESCRIBE_TOKENS.
//   - Permission: ALLOW or DENY.
//   - ResourceType: TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID,
//     DELEGATION_TOKEN, USER.
//   - ResourceName: the name; "*" for every resource of the type;
//     "kafka-cluster" for the cluster.
//   - PatternType: LITERAL (the default) or PREFIXED (ResourceName is a
//     prefix).
//
// Used as a filter (ListACLs, DeleteACLs), an empty field matches
// anything, and PatternType may also be MATCH (every pattern that
// matches ResourceName).
type ACL struct {
	Principal    string
	Host         string
	Operation    string
	Permission   string
	ResourceType string
	ResourceName string
	PatternType  string
}

func (x ACL) String() string {
	return fmt.Sprintf("%s %s %s from %s on %s %s (%s)", x.Principal, x.Permission, x.Operation, x.Host, x.ResourceType, x.ResourceName, x.PatternType)
}

// Validate checks x before anything is sent: as an ACL to create
// (asFilter false: every field named, in Kafka's words) or as a filter for
// ListACLs and DeleteACLs. The error says which field is wrong and what
// it may be.
func (x ACL) Validate(asFilter bool) error {
	_, err := x.parse(asFilter)
	return err
}

// aclEnums is an ACL in Kafka's wire enums.
type aclEnums struct {
	op   kmsg.ACLOperation
	perm kmsg.ACLPermissionType
	rt   kmsg.ACLResourceType
	pat  kmsg.ACLResourcePatternType
}

// parse turns x's names into enums. filter allows empty (ANY) fields and
// the MATCH pattern; a binding (CreateACLs) needs every field.
func (x ACL) parse(filter bool) (aclEnums, error) {
	var e aclEnums
	var problems []string
	field := func(name, v string, any bool, parse func(string) error, choices string) {
		if v == "" {
			if !filter && !any {
				problems = append(problems, fmt.Sprintf("%s is required (one of %s)", name, choices))
			}
			return
		}
		if err := parse(v); err != nil {
			problems = append(problems, fmt.Sprintf("%s %q is not one of %s", name, v, choices))
		}
	}
	e.op, e.perm, e.rt, e.pat = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny, kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	if !filter {
		e.pat = kmsg.ACLResourcePatternTypeLiteral
	}
	field("operation", x.Operation, false, func(s string) (err error) { e.op, err = kmsg.ParseACLOperation(s); return }, "ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE")
	field("permission", x.Permission, false, func(s string) (err error) { e.perm, err = kmsg.ParseACLPermissionType(s); return }, "ALLOW, DENY")
	field("resource type", x.ResourceType, false, func(s string) (err error) { e.rt, err = kmsg.ParseACLResourceType(s); return }, "TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, DELEGATION_TOKEN, USER")
	field("pattern type", x.PatternType, true, func(s string) (err error) { e.pat, err = kmsg.ParseACLResourcePatternType(s); return }, "LITERAL, PREFIXED (and, in a filter, MATCH)")
	if !filter {
		switch {
		case e.op == kmsg.ACLOperationAny:
			problems = append(problems, "operation ANY is only for filters; use ALL for every operation")
		case e.perm == kmsg.ACLPermissionTypeAny:
			problems = append(problems, "permission ANY is only for filters; use ALLOW or DENY")
		case e.rt == kmsg.ACLResourceTypeAny:
			problems = append(problems, "resource type ANY is only for filters")
		case e.pat != kmsg.ACLResourcePatternTypeLiteral && e.pat != kmsg.ACLResourcePatternTypePrefixed:
			problems = append(problems, "pattern type must be LITERAL or PREFIXED")
		}
		if x.ResourceName == "" {
			problems = append(problems, "resource name is required (\"*\" for every resource of the type, kafka-cluster for the cluster)")
		}
		if x.Principal == "" {
			problems = append(problems, "principal is required, e.g. User:alice")
		}
	}
	if x.Principal != "" && !strings.Contains(x.Principal, ":") {
		problems = append(problems, fmt.Sprintf("principal %q needs its type, e.g. User:%s", x.Principal, x.Principal))
	}
	if len(problems) > 0 {
		return e, fmt.Errorf("admin: ACL %s: %s", x.describe(), strings.Join(problems, "; "))
	}
	return e, nil
}

func (x ACL) describe() string {
	if x.Principal == "" && x.ResourceName == "" {
		return "(filter)"
	}
	return fmt.Sprintf("for %s on %s", orAny(x.Principal), orAny(x.ResourceName))
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return s
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return kmsg.StringPtr(s)
}

// ListACLs lists the ACLs matching filter (DescribeACLs), sorted. A
// cluster without an authorizer gives an error matching
// ErrSecurityDisabled.
func (a *Admin) ListACLs(ctx context.Context, filter ACL) ([]ACL, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.ListACLs")
	}
	e, err := filter.parse(true)
	if err != nil {
		return nil, err
	}
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.ResourcePatternType = e.rt, e.pat
	req.ResourceName, req.Principal, req.Host = optional(filter.ResourceName), optional(filter.Principal), optional(filter.Host)
	req.Operation, req.PermissionType = e.op, e.perm
	var out []ACL
	err = a.aclRequest(ctx, "listing ACLs", req, func(resp kmsg.Response, addr string) error {
		r := resp.(*kmsg.DescribeACLsResponse)
		if r.ErrorCode != errs.CodeNone {
			return aclErr(r.ErrorCode, addr, r.ErrorMessage, "listing ACLs")
		}
		out = out[:0]
		for _, res := range r.Resources {
			for _, x := range res.ACLs {
				out = append(out, ACL{
					Principal: x.Principal, Host: x.Host, Operation: x.Operation.String(), Permission: x.PermissionType.String(),
					ResourceType: res.ResourceType.String(), ResourceName: res.ResourceName, PatternType: res.ResourcePatternType.String(),
				})
			}
		}
		return nil
	})
	sortACLs(out)
	return out, err
}

// CreateACLs adds acls (CreateACLs). Each must name every field but Host
// ("*" when empty) and PatternType (LITERAL when empty). The errors of
// several ACLs are joined; those that succeeded stay.
func (a *Admin) CreateACLs(ctx context.Context, acls ...ACL) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.CreateACLs")
	}
	if len(acls) == 0 {
		return errors.New("admin: CreateACLs needs at least one ACL")
	}
	req := kmsg.NewPtrCreateACLsRequest()
	for _, x := range acls {
		e, err := x.parse(false)
		if err != nil {
			return err
		}
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = e.rt, x.ResourceName, e.pat
		c.Principal, c.Host = x.Principal, cmp.Or(x.Host, "*")
		c.Operation, c.PermissionType = e.op, e.perm
		req.Creations = append(req.Creations, c)
	}
	return a.aclRequest(ctx, "creating ACLs", req, func(resp kmsg.Response, addr string) error {
		var failures []error
		for i, r := range resp.(*kmsg.CreateACLsResponse).Results {
			if r.ErrorCode != errs.CodeNone && i < len(acls) {
				failures = append(failures, aclErr(r.ErrorCode, addr, r.ErrorMessage, "creating ACL "+acls[i].String()))
			}
		}
		return errors.Join(failures...)
	})
}

// DeleteACLs deletes every ACL matching any of filters (DeleteACLs) and
// returns the ones deleted, sorted. A filter must name at least a
// principal or a resource, so that an empty filter cannot delete every
// ACL of the cluster by accident.
func (a *Admin) DeleteACLs(ctx context.Context, filters ...ACL) ([]ACL, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.DeleteACLs")
	}
	if len(filters) == 0 {
		return nil, errors.New("admin: DeleteACLs needs at least one filter")
	}
	req := kmsg.NewPtrDeleteACLsRequest()
	for _, f := range filters {
		if f.Principal == "" && f.ResourceName == "" {
			return nil, errors.New("admin: DeleteACLs: a filter with neither a principal nor a resource name would delete every ACL; name at least one")
		}
		e, err := f.parse(true)
		if err != nil {
			return nil, err
		}
		df := kmsg.NewDeleteACLsRequestFilter()
		df.ResourceType, df.ResourcePatternType = e.rt, e.pat
		df.ResourceName, df.Principal, df.Host = optional(f.ResourceName), optional(f.Principal), optional(f.Host)
		df.Operation, df.PermissionType = e.op, e.perm
		req.Filters = append(req.Filters, df)
	}
	var deleted []ACL
	err := a.aclRequest(ctx, "deleting ACLs", req, func(resp kmsg.Response, addr string) error {
		deleted = deleted[:0]
		var failures []error
		for _, r := range resp.(*kmsg.DeleteACLsResponse).Results {
			if r.ErrorCode != errs.CodeNone {
				failures = append(failures, aclErr(r.ErrorCode, addr, r.ErrorMessage, "deleting ACLs"))
				continue
			}
			for _, m := range r.MatchingACLs {
				if m.ErrorCode != errs.CodeNone {
					failures = append(failures, aclErr(m.ErrorCode, addr, m.ErrorMessage, "deleting an ACL of "+m.Principal))
					continue
				}
				deleted = append(deleted, ACL{
					Principal: m.Principal, Host: m.Host, Operation: m.Operation.String(), Permission: m.PermissionType.String(),
					ResourceType: m.ResourceType.String(), ResourceName: m.ResourceName, PatternType: m.ResourcePatternType.String(),
				})
			}
		}
		return errors.Join(failures...)
	})
	sortACLs(deleted)
	return deleted, err
}

// aclRequest sends req to any broker (every broker answers ACL requests)
// and hands the answer to handle, retrying failures worth retrying.
func (a *Admin) aclRequest(ctx context.Context, what string, req kmsg.Request, handle func(kmsg.Response, string) error) error {
	r := a.newRetry()
	for {
		var last error
		resp, addr, err := a.anyBroker(ctx, req)
		switch {
		case err != nil && !retriable(ctx, err):
			return fmt.Errorf("%s: %w", what, err)
		case err != nil:
			last = err
		default:
			herr := handle(resp, addr)
			if herr == nil || !errs.IsRetriable(herr) {
				return herr
			}
			last = herr
		}
		if err := r.wait(ctx, last); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

func aclErr(code int16, addr string, msg *string, detail string) error {
	switch code {
	case errs.CodeSecurityDisabled:
		detail += ": the cluster has no authorizer configured, so it keeps no ACLs"
	case errs.CodeClusterAuthorizationFailed:
		detail += ": this principal may not manage ACLs (it needs ALTER, or DESCRIBE to list, on the cluster)"
	}
	return codeErr(code, addr, msg, detail)
}

func sortACLs(acls []ACL) {
	slices.SortFunc(acls, func(x, y ACL) int {
		return cmp.Or(cmp.Compare(x.ResourceType, y.ResourceType), cmp.Compare(x.ResourceName, y.ResourceName),
			cmp.Compare(x.PatternType, y.PatternType), cmp.Compare(x.Principal, y.Principal),
			cmp.Compare(x.Operation, y.Operation), cmp.Compare(x.Permission, y.Permission), cmp.Compare(x.Host, y.Host))
	})
}
