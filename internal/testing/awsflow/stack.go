package awsflow

import (
	"context"
	"fmt"

	"approvalbot/bot/awsapp"
	"approvalbot/internal/testing/dynamotest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
)

// CreateResources creates what the Lambdas configured by cfg need on moto: the
// DynamoDB table, the pages bucket and the sender's SES identity (moto refuses
// to send from an address that is not one).
func CreateResources(ctx context.Context, awsCfg aws.Config, cfg awsapp.Config) error {
	if err := dynamotest.CreateTable(ctx, dynamodb.NewFromConfig(awsCfg), cfg.Table); err != nil {
		return err
	}
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
	}
	if _, err := sesv2.NewFromConfig(awsCfg).CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(cfg.MailFrom)}); err != nil {
		return fmt.Errorf("create email identity %s: %w", cfg.MailFrom, err)
	}
	return nil
}
