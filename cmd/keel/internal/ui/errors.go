package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// maxBodyBytes bounds a request body (a produced record with its headers
// is the largest thing the API takes).
const maxBodyBytes = 2 << 20

// apiError is an error with the HTTP status it is answered with.
type apiError struct {
	status int
	msg    string
	err    error // the cause, when there is one
}

func (e *apiError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *apiError) Unwrap() error { return e.err }

func badRequest(format string, a ...any) error {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}

var (
	errReadOnly     = &apiError{status: http.StatusForbidden, msg: "the console is read-only (started with --read-only): writes are refused"}
	errUnauthorized = &apiError{status: http.StatusUnauthorized, msg: "this console needs its token: send Authorization: Bearer TOKEN (the token given to keel ui --auth-token)"}
)

// errorBody is the JSON of every failed call.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// statusOf picks the HTTP status for err: the caller's mistakes are 4xx,
// the cluster's failures 502.
func statusOf(err error) int {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.status
	case errors.Is(err, keel.ErrUnknownTopic), errors.Is(err, admin.ErrGroupNotFound):
		return http.StatusNotFound
	case errors.Is(err, keel.ErrInvalidTopic), errors.Is(err, admin.ErrInvalidPartitions),
		errors.Is(err, admin.ErrInvalidReplicationFactor), errors.Is(err, admin.ErrInvalidConfig),
		errors.Is(err, admin.ErrTopicExists), errors.Is(err, admin.ErrGroupNotEmpty):
		return http.StatusBadRequest
	case errors.Is(err, keel.ErrTopicAuthorization), errors.Is(err, keel.ErrGroupAuthorization), errors.Is(err, admin.ErrClusterAuthorization):
		return http.StatusForbidden
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadGateway
}

func writeError(w http.ResponseWriter, err error) {
	status := statusOf(err)
	writeJSON(w, status, errorBody{Error: err.Error(), Status: status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	_ = enc.Encode(v) // the client went away: nothing to tell it
}

// decodeBody reads a JSON request body into v, refusing unknown fields so
// a misspelt field is an error rather than silently ignored.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body over %d bytes", mbe.Limit)}
		}
		return badRequest("request body is not the JSON this call takes: %v", err)
	}
	return nil
}
