package web

// ForwardStatus is the state of alerts.forward, shown on /ready and the
// operator page.
type ForwardStatus struct {
	// NotifyLocally tells whether the sidecar's own receivers get the
	// alerts as well.
	NotifyLocally bool `json:"notify_locally"`
	// Gateways are the forward URLs, each with what Prometheus's notifier
	// counted for it since start.
	Gateways []ForwardGateway `json:"gateways"`
}

// ForwardGateway is one gateway alerts are forwarded to.
type ForwardGateway struct {
	URL string `json:"url"`
	// Sent, Errors and Dropped are alerts, as
	// prometheus_notifications_{sent,errors,dropped}_total count them.
	Sent    float64 `json:"sent"`
	Errors  float64 `json:"errors"`
	Dropped float64 `json:"dropped"`
	// Queued are alerts waiting to be sent.
	Queued float64 `json:"queued"`
}
