package stripe

// SetAfterStripeAcceptFn installs the fault hook called after Stripe
// accepted an invoice item and before the ledger marks its intent done.
func SetAfterStripeAcceptFn(s *Service, fn func() error) { s.afterStripeAcceptFn = fn }
