package awsflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"approvalbot/internal/testing/mototest/motoserver"
)

// MotoInstall is the command that installs the moto server this package expects.
const MotoInstall = motoserver.Install

// Moto is a moto_server process started by StartMoto (tests use package
// mototest instead).
type Moto struct {
	URL  string
	proc *motoserver.Server
}

// StartMoto runs `moto_server -H 127.0.0.1 -p <free port>` with env added to its
// environment, waits until it answers and enables Step Functions execution.
func StartMoto(ctx context.Context, env []string) (*Moto, error) {
	wait, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p, err := motoserver.Start(wait, env)
	if err != nil {
		return nil, err
	}
	if err := motoserver.EnableStepFunctionsExecution(wait, p.URL); err != nil {
		p.Stop()
		return nil, fmt.Errorf("moto_server: %w", err)
	}
	return &Moto{URL: p.URL, proc: p}, nil
}

// Stop ends the moto_server process and its children.
func (m *Moto) Stop() { m.proc.Stop() }

// Mail is one message sent through SES, as moto keeps it (its HTML part).
type Mail struct {
	From, Subject, Body string
	To                  []string
}

// SentMail returns the messages moto's SES has sent, oldest first.
func (m *Moto) SentMail(ctx context.Context) ([]Mail, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/moto-api/data.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("GET /moto-api/data.json: " + resp.Status)
	}
	var data struct {
		SES struct {
			Message []struct {
				Source       string              `json:"source"`
				Subject      string              `json:"subject"`
				Body         string              `json:"body"`
				Destinations map[string][]string `json:"destinations"`
			} `json:"Message"`
		} `json:"ses"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&data); err != nil {
		return nil, fmt.Errorf("decode /moto-api/data.json: %w", err)
	}
	var out []Mail
	for _, msg := range data.SES.Message {
		out = append(out, Mail{From: msg.Source, Subject: msg.Subject, Body: msg.Body, To: msg.Destinations["ToAddresses"]})
	}
	return out, nil
}
