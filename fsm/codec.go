package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/internal/wire"
	"github.com/nebula-engine/nebula/storage"
)

// Log entry layout. An entry is a batch of commands that share one
// timestamp (the leader's clock when it cut the batch):
//
//	entry   = kindBatch uvarint(unixNano) uvarint(n) n*(uvarint(len) command)
//	command = type-byte body
//
// Command types with the high bit set may be ignored by a node that does
// not know them (optional commands added by a newer version); any other
// unknown type is a bug and stops the node rather than diverge.
const kindBatch byte = 1

const ignorableFlag byte = 0x80

// Command type bytes. Never renumber: they are in every stored log.
const (
	typePutWorkflow      byte = 1
	typeDeleteWorkflow   byte = 2
	typeStartExecution   byte = 3
	typeClaimTasks       byte = 4
	typeCompleteTask     byte = 5
	typeRenewLease       byte = 6
	typeReclaimTasks     byte = 7
	typeCancel           byte = 8
	typeFireTimers       byte = 9
	typeSetLimits        byte = 10
	typeFireCron         byte = 11
	typePutCredential    byte = 12
	typeDelCredential    byte = 13
	typeRegisterAction   byte = 14
	typeCreateTenant     byte = 15
	typeSetTenantQuota   byte = 16
	typeIssueToken       byte = 17
	typeRevokeToken      byte = 18
	typeResealCredential byte = 19
	typeCompleteAndClaim byte = 20
	typeContinue         byte = 21
	typeSetLimitsV2      byte = 22 // SetLimits with the definition limits
)

// ErrUnknownCommand reports a command type this version cannot apply.
var ErrUnknownCommand = errors.New("unknown command type")

// Batch is one decoded log entry.
type Batch struct {
	Now      time.Time
	Commands []engine.Command // nil for an ignorable command this version does not know
}

// EncodeBatch encodes commands stamped with now as one log entry.
func EncodeBatch(now time.Time, cmds []engine.Command) ([]byte, error) {
	var e encoder
	e.byte(kindBatch)
	e.uvarint(uint64(now.UnixNano()))
	e.uvarint(uint64(len(cmds)))
	var body encoder
	for _, c := range cmds {
		body.buf = body.buf[:0]
		if err := encodeCommand(&body, c); err != nil {
			return nil, err
		}
		e.bytes(body.buf)
	}
	return e.buf, nil
}

// DecodeBatch decodes a log entry. It never panics on bad input.
func DecodeBatch(data []byte) (*Batch, error) {
	d := decoder{wire.NewReader(data)}
	if k := d.Byte(); k != kindBatch {
		if d.Err() != nil {
			return nil, d.Err()
		}
		return nil, fmt.Errorf("fsm: unknown entry kind %d", k)
	}
	now := d.Uvarint()
	n := d.Uvarint()
	if d.Err() != nil {
		return nil, fmt.Errorf("fsm: entry header: %w", d.Err())
	}
	if now > math.MaxInt64 {
		return nil, fmt.Errorf("fsm: entry time out of range")
	}
	// Every command takes at least two bytes; refuse counts the data
	// cannot hold before allocating for them.
	if n > uint64(len(data)) {
		return nil, fmt.Errorf("fsm: entry claims %d commands in %d bytes", n, len(data))
	}
	b := &Batch{Now: time.Unix(0, int64(now)).UTC(), Commands: make([]engine.Command, 0, n)}
	for i := uint64(0); i < n; i++ {
		raw := d.Bytes()
		if d.Err() != nil {
			return nil, fmt.Errorf("fsm: command %d: %w", i, d.Err())
		}
		c, err := decodeCommand(raw)
		if err != nil {
			return nil, fmt.Errorf("fsm: command %d: %w", i, err)
		}
		b.Commands = append(b.Commands, c)
	}
	if d.Len() != 0 {
		return nil, fmt.Errorf("fsm: %d trailing bytes after entry", d.Len())
	}
	return b, nil
}

func encodeCommand(e *encoder, cmd engine.Command) error {
	switch c := cmd.(type) {
	case *engine.PutWorkflow:
		e.byte(typePutWorkflow)
		e.str(c.Tenant)
		e.str(c.ID)
		e.bytes(c.Definition)
	case *engine.DeleteWorkflow:
		e.byte(typeDeleteWorkflow)
		e.str(c.Tenant)
		e.str(c.ID)
	case *engine.StartExecution:
		e.byte(typeStartExecution)
		e.str(c.Tenant)
		e.str(c.ExecutionID)
		e.str(c.WorkflowID)
		e.bytes(c.Input)
		e.str(c.IdempotencyKey)
	case *engine.ClaimTasks:
		e.byte(typeClaimTasks)
		e.claim(c)
	case *engine.CompleteTask:
		if c.Claim == nil {
			e.byte(typeCompleteTask)
		} else {
			e.byte(typeCompleteAndClaim)
		}
		e.str(c.TaskID)
		e.uvarint(c.Token)
		e.bytes(c.Output)
		e.str(c.Error)
		e.bool(c.Retryable)
		e.uvarint(uint64(c.Jitter))
		if c.Claim != nil {
			e.claim(c.Claim)
		}
	case *engine.RenewLease:
		e.byte(typeRenewLease)
		e.str(c.TaskID)
		e.uvarint(c.Token)
		e.varint(int64(c.TTL))
	case *engine.ReclaimTasks:
		e.byte(typeReclaimTasks)
		e.uvarint(uint64(c.Max))
		e.str(c.HolderPrefix)
		e.str(c.KeepHolder)
	case *engine.CancelExecution:
		e.byte(typeCancel)
		e.str(c.Tenant)
		e.str(c.ExecutionID)
		e.str(c.Reason)
	case *engine.PutCredential:
		e.byte(typePutCredential)
		e.str(c.Tenant)
		e.str(c.Name)
		e.str(c.Type)
		e.bytes(c.Sealed)
	case *engine.DeleteCredential:
		e.byte(typeDelCredential)
		e.str(c.Tenant)
		e.str(c.Name)
	case *engine.RegisterAction:
		e.byte(typeRegisterAction)
		e.str(c.Tenant)
		e.str(c.ID)
		e.str(c.Version)
		e.strs(c.Capabilities)
		e.str(c.ModuleRef)
		e.varint(c.Size)
	case *engine.FireCron:
		e.byte(typeFireCron)
		e.str(c.Tenant)
		e.str(c.WorkflowID)
		e.uvarint(uint64(c.Trigger))
		e.varint(c.Tick.UnixNano())
		e.str(c.ExecutionID)
	case *engine.SetLimits:
		e.byte(typeSetLimitsV2)
		e.uvarint(uint64(c.MaxConcurrentExecutions))
		e.uvarint(uint64(c.MaxWorkflowNodes))
		e.uvarint(uint64(c.MaxDefinitionBytes))
	case *engine.FireTimers:
		e.byte(typeFireTimers)
		e.uvarint(uint64(c.Max))
		e.uvarint(uint64(c.Jitter))
	case *engine.Continue:
		e.byte(typeContinue)
		e.uvarint(uint64(c.Max))
	case *engine.CreateTenant:
		e.byte(typeCreateTenant)
		e.str(c.ID)
		e.str(c.Name)
		e.quota(c.Quota)
		e.str(c.TokenID)
		e.str(c.TokenHash)
	case *engine.SetTenantQuota:
		e.byte(typeSetTenantQuota)
		e.str(c.ID)
		e.quota(c.Quota)
	case *engine.IssueToken:
		e.byte(typeIssueToken)
		e.str(c.Tenant)
		e.str(c.TokenID)
		e.str(c.TokenHash)
	case *engine.RevokeToken:
		e.byte(typeRevokeToken)
		e.str(c.Tenant)
		e.str(c.TokenID)
	case *engine.ResealCredential:
		e.byte(typeResealCredential)
		e.str(c.Tenant)
		e.str(c.Name)
		e.bytes(c.Expect)
		e.bytes(c.Sealed)
	default:
		return fmt.Errorf("fsm: cannot encode %T", cmd)
	}
	return nil
}

func decodeCommand(raw []byte) (engine.Command, error) {
	d := decoder{wire.NewReader(raw)}
	typ := d.Byte()
	var c engine.Command
	switch typ {
	case typePutWorkflow:
		c = &engine.PutWorkflow{Tenant: d.Str(), ID: d.Str(), Definition: d.Bytes()}
	case typeDeleteWorkflow:
		c = &engine.DeleteWorkflow{Tenant: d.Str(), ID: d.Str()}
	case typeStartExecution:
		c = &engine.StartExecution{Tenant: d.Str(), ExecutionID: d.Str(), WorkflowID: d.Str(), Input: d.Bytes(), IdempotencyKey: d.Str()}
	case typeClaimTasks:
		c = d.claim()
	case typeCompleteTask, typeCompleteAndClaim:
		ct := &engine.CompleteTask{TaskID: d.Str(), Token: d.Uvarint(), Output: d.Bytes(), Error: d.Str(), Retryable: d.bool(), Jitter: d.uint32()}
		if typ == typeCompleteAndClaim {
			ct.Claim = d.claim()
		}
		c = ct
	case typeRenewLease:
		c = &engine.RenewLease{TaskID: d.Str(), Token: d.Uvarint(), TTL: time.Duration(d.Varint())}
	case typeReclaimTasks:
		c = &engine.ReclaimTasks{Max: d.count(), HolderPrefix: d.Str(), KeepHolder: d.Str()}
	case typeCancel:
		c = &engine.CancelExecution{Tenant: d.Str(), ExecutionID: d.Str(), Reason: d.Str()}
	case typePutCredential:
		c = &engine.PutCredential{Tenant: d.Str(), Name: d.Str(), Type: d.Str(), Sealed: d.Bytes()}
	case typeDelCredential:
		c = &engine.DeleteCredential{Tenant: d.Str(), Name: d.Str()}
	case typeRegisterAction:
		c = &engine.RegisterAction{Tenant: d.Str(), ID: d.Str(), Version: d.Str(), Capabilities: d.strs(), ModuleRef: d.Str(), Size: d.Varint()}
	case typeFireCron:
		c = &engine.FireCron{Tenant: d.Str(), WorkflowID: d.Str(), Trigger: d.count(), Tick: time.Unix(0, d.Varint()).UTC(), ExecutionID: d.Str()}
	case typeSetLimits:
		c = &engine.SetLimits{MaxConcurrentExecutions: d.count()}
	case typeSetLimitsV2:
		c = &engine.SetLimits{MaxConcurrentExecutions: d.count(), MaxWorkflowNodes: d.count(), MaxDefinitionBytes: d.count()}
	case typeFireTimers:
		c = &engine.FireTimers{Max: d.count(), Jitter: d.uint32()}
	case typeContinue:
		c = &engine.Continue{Max: d.count()}
	case typeCreateTenant:
		c = &engine.CreateTenant{ID: d.Str(), Name: d.Str(), Quota: d.quota(), TokenID: d.Str(), TokenHash: d.Str()}
	case typeSetTenantQuota:
		c = &engine.SetTenantQuota{ID: d.Str(), Quota: d.quota()}
	case typeIssueToken:
		c = &engine.IssueToken{Tenant: d.Str(), TokenID: d.Str(), TokenHash: d.Str()}
	case typeRevokeToken:
		c = &engine.RevokeToken{Tenant: d.Str(), TokenID: d.Str()}
	case typeResealCredential:
		c = &engine.ResealCredential{Tenant: d.Str(), Name: d.Str(), Expect: d.Bytes(), Sealed: d.Bytes()}
	default:
		if d.Err() != nil {
			return nil, d.Err()
		}
		if typ&ignorableFlag != 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("%w %d", ErrUnknownCommand, typ)
	}
	if d.Err() != nil {
		return nil, d.Err()
	}
	if d.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes after command type %d", d.Len(), typ)
	}
	return c, nil
}

type encoder struct{ buf []byte }

func (e *encoder) byte(b byte)      { e.buf = append(e.buf, b) }
func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) str(s string)     { e.buf = wire.AppendString(e.buf, s) }
func (e *encoder) bytes(b []byte)   { e.buf = wire.AppendBytes(e.buf, b) }

// strs writes a count, then each string; nil and empty encode alike.
func (e *encoder) strs(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

// quota writes the four limits as varints: a negative one must survive
// the trip so that every replica refuses it alike.
func (e *encoder) quota(q storage.Quota) {
	e.varint(q.MaxWorkflows)
	e.varint(q.MaxConcurrentExecutions)
	e.varint(q.MaxExecutionsPerHour)
	e.varint(q.MaxStorageMB)
}

func (e *encoder) bool(b bool) {
	if b {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

// decoder reads a command's fields in order (see wire.Reader), plus the
// shapes only commands use.
type decoder struct{ wire.Reader }

// count reads a non-negative int that fits in an int.
func (d *decoder) count() int {
	v := d.Uvarint()
	if v > math.MaxInt32 {
		d.Fail(fmt.Errorf("count %d out of range", v))
		return 0
	}
	return int(v)
}

// strs reads what encoder.strs wrote; none decodes to nil.
func (d *decoder) strs() []string {
	n := d.Uvarint()
	if d.Err() != nil || n == 0 {
		return nil
	}
	// Each string takes at least its length byte: refuse counts the data
	// cannot hold before allocating for them.
	if n > uint64(d.Len()) {
		d.Fail(wire.ErrShort)
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.Str()
	}
	if d.Err() != nil {
		return nil
	}
	return out
}

// quota reads what encoder.quota wrote.
func (d *decoder) quota() storage.Quota {
	return storage.Quota{
		MaxWorkflows:            d.Varint(),
		MaxConcurrentExecutions: d.Varint(),
		MaxExecutionsPerHour:    d.Varint(),
		MaxStorageMB:            d.Varint(),
	}
}

func (d *decoder) bool() bool {
	switch d.Byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.Fail(errors.New("bad bool"))
	return false
}

func (d *decoder) uint32() uint32 {
	v := d.Uvarint()
	if v > math.MaxUint32 {
		d.Fail(fmt.Errorf("value %d out of range", v))
		return 0
	}
	return uint32(v)
}

// EncodeCommand encodes one command on its own, as a follower sends it to
// the leader.
func EncodeCommand(cmd engine.Command) ([]byte, error) {
	var e encoder
	if err := encodeCommand(&e, cmd); err != nil {
		return nil, err
	}
	return e.buf, nil
}

// DecodeCommand decodes what EncodeCommand made. An ignorable command this
// version does not know decodes to nil.
func DecodeCommand(data []byte) (engine.Command, error) {
	return decodeCommand(data)
}

// claim writes the fields of a claim, alone or carried by a report.
func (e *encoder) claim(c *engine.ClaimTasks) {
	e.str(c.Holder)
	e.uvarint(uint64(c.Max))
	e.varint(int64(c.TTL))
}

func (d *decoder) claim() *engine.ClaimTasks {
	return &engine.ClaimTasks{Holder: d.Str(), Max: d.count(), TTL: time.Duration(d.Varint())}
}
