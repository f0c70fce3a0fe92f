package main

import (
	"context"
	"fmt"

	"github.com/ferry-io/ferry/auth"
)

// staticTokens loads the --tokens file, if one is given (nil otherwise).
func (cfg *serveConfig) staticTokens() (*auth.Tokens, error) {
	if cfg.tokensFile == "" {
		return nil, nil
	}
	t, err := auth.LoadTokens(cfg.tokensFile)
	if err != nil {
		return nil, fmt.Errorf("--tokens: %w", err)
	}
	return t, nil
}

// loadJWKS loads the --jwks set, if one is given (nil otherwise): a URL
// that cannot be fetched at the start, or a file that cannot be read, is
// an error, as a key set that would refuse every token from the start is
// better found at once.
func (cfg *serveConfig) loadJWKS() (*auth.JWKS, error) {
	if cfg.jwks == "" {
		return nil, nil
	}
	k, err := auth.NewJWKS(context.Background(), cfg.jwks, auth.JWKSOptions{})
	if err != nil {
		return nil, fmt.Errorf("--jwks: %w", err)
	}
	return k, nil
}

// authenticate sets Options.Authenticate from what is configured: the
// static tokens first (a look-up), then JWTs; a token neither knows gets
// 401 "unknown token".
func (cfg *serveConfig) authenticate(tokens *auth.Tokens, j *auth.JWT) {
	var methods []auth.Method
	if tokens != nil {
		methods = append(methods, tokens.Authenticate)
	}
	if j != nil {
		methods = append(methods, j.Authenticate)
	}
	switch len(methods) {
	case 0:
	case 1:
		cfg.opts.Authenticate = methods[0]
	default:
		cfg.opts.Authenticate = auth.Chain(methods...)
	}
}
