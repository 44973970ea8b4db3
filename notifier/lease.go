package notifier

import "time"

// DefaultLease is how long a claim of a shared store lasts without renewal
// (storage.lease).
const DefaultLease = 15 * time.Second

// Claim kinds: what a gateway claims before acting on it.
const (
	ClaimDelivery = "delivery" // a delivery attempt; id is the delivery's
	ClaimDeadline = "deadline" // an escalation step; id is the incident's
	ClaimRollback = "rollback" // a rollback decision; id is the incident's
)

// Leaser is implemented by a Store that several gateways share (pgstore).
// A gateway claims a delivery before attempting it and an incident's
// deadline or rollback decision before acting on it, so that one gateway
// acts; a claim lasts ttl unless its owner renews it, so the claims of a
// gateway that died pass to another when they end. A Store without it
// (BoltStore) belongs to one process, whose claims always succeed.
type Leaser interface {
	// Claim takes (kind, id) for owner until now+ttl and reports whether
	// owner holds it: it was free, expired or owner's already. It never
	// waits for another gateway's transaction (FOR UPDATE SKIP LOCKED).
	Claim(kind, id, owner string, ttl time.Duration) (bool, error)
	// Release gives up a claim of owner; releasing one not held does
	// nothing.
	Release(kind, id, owner string) error
	// Renew extends every claim of owner to now+ttl and records owner as a
	// live peer; it returns how many claims it extended.
	Renew(owner string, ttl time.Duration) (int, error)
	// Peers lists the gateways that renewed within their lease, with the
	// claims they hold.
	Peers() ([]Peer, error)
	// Describe names the store for /ready and the page, without secrets:
	// "postgres://host:port/db (schema vigil)".
	Describe() string
}

// Peer is a gateway sharing the store.
type Peer struct {
	Owner     string    `json:"owner"`
	Claims    int       `json:"claims"`
	RenewedAt time.Time `json:"renewedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Self is the gateway answering.
	Self bool `json:"self"`
}
