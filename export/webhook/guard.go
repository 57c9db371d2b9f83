package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/meterd/meterd/meter"
)

// ErrBlockedAddress: the endpoint resolved to a loopback, private,
// link-local or otherwise internal address while those are refused.
var ErrBlockedAddress = errors.New("webhook address is internal and refused")

// cgnat is the carrier-grade NAT range, internal in practice.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// internal reports whether ip must not be reached when private
// addresses are refused.
func internal(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || cgnat.Contains(ip)
}

// checkURL accepts only absolute http(s) URLs without credentials; with
// refusePrivate, a literal internal IP is refused at once (names are
// checked again at every connection, after resolution).
func checkURL(raw string, refusePrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return meter.Invalid("url", "must be an absolute http or https URL")
	}
	if u.User != nil {
		return meter.Invalid("url", "must not carry credentials")
	}
	if len(raw) > 2048 {
		return meter.Invalid("url", "must be at most 2048 bytes")
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && refusePrivate && internal(ip) {
		return meter.Invalid("url", "points at an internal address, which this server refuses")
	}
	return nil
}

// newClient returns the HTTP client for deliveries: no proxy from the
// environment, no redirects (a 3xx is a failed attempt), and, with
// refusePrivate, a dialer that checks the address actually dialled, so a
// name that resolves to an internal address (or is rebound to one) is
// refused too.
func newClient(timeout time.Duration, refusePrivate bool) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	if refusePrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || internal(ap.Addr()) {
				return fmt.Errorf("dial %s: %w", address, ErrBlockedAddress)
			}
			return nil
		}
	}
	tr := &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: timeout,
		ResponseHeaderTimeout: timeout, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
