terraform {
  required_version = ">= 1.9.0"
  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.4"
    }
  }
}

# Credentials and region from the usual OpenStack environment: OS_CLOUD with a clouds.yaml, or
# OS_AUTH_URL, OS_PROJECT_NAME, OS_USERNAME, OS_PASSWORD, OS_REGION_NAME … (an openrc file).
provider "openstack" {}
