// Command fetch is an example community action that reaches the network
// through the sandbox's host functions: it reads {"url": "...",
// "credential": "..."} from stdin (credential is optional), sends a GET and
// writes {"status": <int>, "body": <the response body>} to stdout. A
// failed request is reported on stderr with exit status 1. It must be
// granted "net:<host>" for the URL's host, and "credential:<name>" to use a
// credential.
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -o fetch.wasm ./examples/actions/fetch
//
// The host functions it imports (see package sandbox/wasm):
//
//	nebula.http_request(req_ptr u32, req_len u32) -> u32
//	    Sends the request whose JSON (the params of builtin.http:
//	    {"method", "url", "headers", "body", "timeout", "credential",
//	    "fail_on_status"}) is at [req_ptr, req_ptr+req_len), waits for the
//	    response and returns the length of its JSON.
//	nebula.http_response(buf_ptr u32, buf_len u32) -> u32
//	    Copies up to buf_len bytes of the last response's JSON to buf_ptr
//	    and returns the count copied.
//
// The response is a JSON object: {"status", "headers", "body"} on success,
// {"error": "<message>"} on any failure, including a host the action may
// not reach ("capability not granted: net:<host>"). Pointers outside the
// module's memory trap.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

type input struct {
	URL        string `json:"url"`
	Credential string `json:"credential,omitempty"`
}

// request is the part of builtin.http's params this action uses.
type request struct {
	Method     string `json:"method"`
	URL        string `json:"url"`
	Credential string `json:"credential,omitempty"`
}

type response struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
	Error  *string         `json:"error"`
}

type output struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"` // null when the response had none
}

func main() {
	if err := run(); err != nil {
		// The sandbox puts stderr's tail into the attempt's error.
		fmt.Fprintln(os.Stderr, "fetch:", err)
		os.Exit(1)
	}
}

func run() error {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		return fmt.Errorf("bad params: %w", err)
	}
	if in.URL == "" {
		return fmt.Errorf("bad params: url is required")
	}
	req, err := json.Marshal(request{Method: "GET", URL: in.URL, Credential: in.Credential})
	if err != nil {
		return err
	}
	var resp response
	if err := json.Unmarshal(roundTrip(req), &resp); err != nil {
		return fmt.Errorf("bad response: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("GET %s: %s", in.URL, *resp.Error)
	}
	return json.NewEncoder(os.Stdout).Encode(output{Status: resp.Status, Body: resp.Body})
}
