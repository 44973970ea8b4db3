package notifier

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

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

// Claim results, the result label of vigil_store_claims_total.
const (
	ClaimWon      = "won"      // free, or the owner's already
	ClaimLost     = "lost"     // another live gateway holds it
	ClaimTakeover = "takeover" // another gateway's lease had ended
)

// StoreMetrics are the incident store's, vigil_store_*. A shared store
// counts into them; with the embedded store they stay 0 (one process
// claims nothing), and main registers them anyway so that dashboards read
// 0 rather than nothing.
type StoreMetrics struct {
	Retries   *prometheus.CounterVec
	Claims    *prometheus.CounterVec
	Failovers *prometheus.CounterVec
	Renewals  prometheus.Counter
}

// Codes of vigil_store_transaction_retries_total.
var storeRetryCodes = []string{"40001", "40P01", "23505"}

// NewStoreMetrics builds the store metrics and registers them on reg (when
// not nil).
func NewStoreMetrics(reg prometheus.Registerer) *StoreMetrics {
	m := &StoreMetrics{
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_store_transaction_retries_total",
			Help: "Store transactions rerun after losing a conflict with another gateway's, by PostgreSQL error code (40001 serialization failure, 40P01 deadlock, 23505 the open incident key).",
		}, []string{"code"}),
		Claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_store_claims_total",
			Help: "Claims of deliveries, escalation deadlines and rollback decisions in the shared store, by kind and result (won, lost to a live gateway, takeover of a dead gateway's).",
		}, []string{"kind", "result"}),
		Failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_store_failovers_total",
			Help: "Claims taken over from another gateway whose lease had ended, by kind.",
		}, []string{"kind"}),
		Renewals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_store_lease_renewals_total",
			Help: "Renewals of this gateway's lease on its claims in the shared store.",
		}),
	}
	for _, k := range []string{ClaimDelivery, ClaimDeadline, ClaimRollback} {
		for _, r := range []string{ClaimWon, ClaimLost, ClaimTakeover} {
			m.Claims.WithLabelValues(k, r)
		}
		m.Failovers.WithLabelValues(k)
	}
	for _, c := range storeRetryCodes {
		m.Retries.WithLabelValues(c)
	}
	if reg != nil {
		reg.MustRegister(m.Retries, m.Claims, m.Failovers, m.Renewals)
	}
	return m
}
